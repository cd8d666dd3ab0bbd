/* Internals of src/analyze shared by its files (not a public header). */
#ifndef VC_ANALYZE_INTERNAL_H
#define VC_ANALYZE_INTERNAL_H

#include "analyze/vc_analyze.h"

enum { VC_IMG_MEM, VC_IMG_DISK, VC_IMG_MAX };

typedef struct VcTraceVersion {
        uint32_t parcel;          /* index into VcTrace.parcels */
        uint32_t version;         /* 1, 2, ... */
        int64_t ts;
        uint32_t day;             /* floor((ts - ts of version 1) / 86400) */
        uint32_t line;            /* line of the manifest, for messages */
        char *path[VC_IMG_MAX];   /* resolved against the trace directory */
} VcTraceVersion;

typedef struct VcTraceParcel {
        char *name;
        uint64_t size[VC_IMG_MAX];  /* the same for every version */
        uint32_t nversions;
        uint32_t first;             /* index of version 1 in VcTrace.versions */
} VcTraceParcel;

struct VcTrace {
        char *manifest;             /* path, for messages */
        VcTraceParcel *parcels;     /* sorted bytewise by name */
        size_t nparcels;
        VcTraceVersion *versions;   /* sorted by (parcel, version) */
        size_t nversions;
        uint32_t *order;            /* global order (ts, parcel, version) */
        uint32_t max_day;
        uint64_t bytes;
};

enum { VC_POL_DELTA, VC_POL_IP, VC_POL_ALL, VC_POL_MAX };
enum {
        VC_DL_DEMAND_NOCACHE, VC_DL_DEMAND_DELTA, VC_DL_DEMAND_CAS_M, VC_DL_DEMAND_CAS_MD,
        VC_DL_COMPLETE_NOCACHE, VC_DL_COMPLETE_DELTA, VC_DL_COMPLETE_CAS,
        VC_DL_MAX
};

extern const char *const vc_pol_name[VC_POL_MAX];
extern const char *const vc_dl_mode[VC_DL_MAX];
extern const char *const vc_dl_method[VC_DL_MAX];
/* Keyring entry size E per policy (spec section 2). */
extern const unsigned vc_pol_entry[VC_POL_MAX];

/* The results. Events are the versions k >= 2 in global order; their
 * upload and download arrays are indexed [event][kind][size][comp]. */
struct VcAnalysis {
        const VcTrace *trace;       /* must outlive the analysis */
        size_t nsizes, ncomps;
        uint32_t sizes[VC_AN_CHUNK_SIZES_MAX];
        VcComp comps[VC_COMP_MAX];
        uint32_t ndays;             /* max day + 1 */
        uint64_t *storage;          /* [pol][size][comp][day], cumulative */
        uint64_t *storage_meta;     /* [pol][size][day], cumulative */
        size_t nevents;
        uint32_t *events;           /* index into trace->versions */
        uint64_t *up;               /* [event][pol][size][comp] */
        uint64_t *up_chunks;        /* [event][size]: chunks of M_k and D_k */
        uint64_t *dl;               /* [event][method][size][comp] */
        uint64_t *distinct;         /* [size]: distinct chunks of the trace */
        uint64_t peak_state_bytes;  /* distinct-chunk tables and parcel state */
        double seconds;             /* time spent reading and computing */
        double compress_seconds;    /* CPU time compressing distinct chunks */
        unsigned threads;
};

static inline size_t vc_st_idx(const VcAnalysis *a, int pol, size_t si, size_t ci, uint32_t day)
{
        return (((size_t)pol * a->nsizes + si) * a->ncomps + ci) * a->ndays + day;
}
static inline size_t vc_stm_idx(const VcAnalysis *a, int pol, size_t si, uint32_t day)
{
        return ((size_t)pol * a->nsizes + si) * a->ndays + day;
}
static inline size_t vc_up_idx(const VcAnalysis *a, size_t ev, int pol, size_t si, size_t ci)
{
        return ((ev * VC_POL_MAX + (size_t)pol) * a->nsizes + si) * a->ncomps + ci;
}
static inline size_t vc_dl_idx(const VcAnalysis *a, size_t ev, int m, size_t si, size_t ci)
{
        return ((ev * VC_DL_MAX + (size_t)m) * a->nsizes + si) * a->ncomps + ci;
}
/* Metadata bytes of an upload (the keyring of version k). */
static inline uint64_t vc_up_meta(const VcAnalysis *a, size_t ev, int pol, size_t si)
{
        return a->up_chunks[ev * a->nsizes + si] * vc_pol_entry[pol];
}

/* Mean, median and 95th percentile (nearest rank) of n values. */
typedef struct VcStats {
        double mean;
        uint64_t median, p95, max;
} VcStats;
void vc_stats(uint64_t *vals, size_t n, VcStats *ret); /* sorts vals */

/* Upload / download values of all events for one (kind, size, comp), in
 * event order, into out (nevents entries). */
void vc_analysis_upload_series(const VcAnalysis *a, int pol, size_t si, size_t ci, uint64_t *out);
void vc_analysis_download_series(const VcAnalysis *a, int m, size_t si, size_t ci, uint64_t *out);

/* "4 KiB" (or "4K" when short) for a chunk size. */
const char *vc_chunk_label(uint32_t s, bool short_form, char *buf, size_t len);

/* Makes room for one more element in a growing array p of *cap elements
 * of size elem, n used: returns p, or p reallocated to twice the capacity
 * (first when empty) when full, or NULL (p left as it was) if out of memory. */
void *vc_grow(void *p, size_t *cap, size_t n, size_t elem, size_t first);

/* Chooses a unit for values up to max: returns the divisor, sets *name. */
double vc_unit_for(uint64_t max, const char **name);

#endif
