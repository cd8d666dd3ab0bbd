/* vmcas synth: a synthetic enterprise whose history of VM images behaves
 * like the study's (shared/reference/study.txt, sections 3 and 4).
 *
 * Images are made of 4 KiB blocks (the page and file-system block size, so
 * that sharing shows best at 4 KiB chunks, as in the study). A block is
 * named by a 64-bit content id (kind and seed) and its bytes are a function
 * of the id alone, so "the same file" is the same bytes wherever it lands:
 * - gold images, one per OS release: an OS region of program blocks (each
 *   release shares a part of its blocks with the one before, moved),
 *   configuration text, and free space (zeros); a memory image with kernel
 *   pages, library pages (the same bytes as disk blocks of the OS), zeros;
 * - security patches released on given days for one release: the same new
 *   blocks at the same places for every parcel of that release, applied at
 *   a parcel's next session (and part of the gold for parcels created later);
 * - parcels created from a gold image on different days; sessions a few
 *   days apart in which the user writes, edits and deletes documents,
 *   installs software and downloads popular files (a shared catalogue, Zipf
 *   popularity), fills a browser cache, and now and then defragments (moves
 *   every user block) or reinstalls the OS;
 * - memory images that keep most pages from the session before (the VM was
 *   suspended, not rebooted) and change others to private heap pages, zero
 *   pages and page cache of the files used in the session; now and then a
 *   reboot lays memory out anew.
 * Everything comes from one seeded generator (splitmix64): the same options
 * give the same bytes. */
#include "analyze/analyze_internal.h"
#include "core/vc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#define BLK        4096u
#define EPOCH      1104537600   /* 2005-01-01, when the study's pilot began */
#define NPACKAGES  16
#define NPOPULAR   24
#define WBUF       (1u << 20)

enum { K_ZERO, K_BIN, K_TEXT, K_MEDIA, K_HEAP };
#define CID(kind, seed) ((uint64_t)(kind) << 60 | ((seed) & ((1ull << 60) - 1)))
#define CID_KIND(c)     ((unsigned)((c) >> 60))

static const char *const os_names[] = { "xp", "linux", "xpsp2", "fc4", "win2k", "debian", "fc5", "suse" };
static const char *const users[] = { "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
                                     "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil",
                                     "trent", "victor", "walter", "yolanda" };

typedef struct Rng {
        uint64_t s;
} Rng;

static uint64_t rnd(Rng *r)
{
        uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0. */
static uint64_t below(Rng *r, uint64_t n)
{
        return rnd(r) % n;
}

static bool chance(Rng *r, unsigned percent)
{
        return below(r, 100) < percent;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
        Rng r = { a * 0x2545f4914f6cdd1dull ^ b };
        return rnd(&r);
}

/* The bytes of a block from its content id. The kinds compress like their
 * real counterparts: zeros, program code and text (to about 0.6 with gzip),
 * media (not at all), heap (mostly zeros, small integers and pointers). */
static void gen_block(uint64_t cid, uint8_t *out)
{
        static const char text[] = "etaoinshrdlucmfw etaoinshrdlu\n. ";
        Rng r = { mix(cid, 0x5eed) };
        uint64_t *w = (uint64_t *)out;
        switch (CID_KIND(cid)) {
        case K_ZERO:
                memset(out, 0, BLK);
                break;
        case K_BIN:
                /* Code-like: bytes from a 64-value alphabet with short
                 * back-references (about 0.65 with gzip, and as fast to
                 * compress as real programs; sparse random words would make
                 * zlib's match search crawl). */
                for (unsigned i = 0; i < BLK;) {
                        uint64_t x = rnd(&r);
                        if ((x & 7) == 0 && i > 64) {
                                unsigned d = 1 + ((x >> 3) & 63), l = 4 + ((x >> 9) & 15);
                                for (unsigned k = 0; k < l && i < BLK; k++, i++)
                                        out[i] = out[i - d];
                        } else
                                for (unsigned b = 0; b < 6 && i < BLK; b++, i++)
                                        out[i] = (uint8_t)(((x >> (8 + 8 * b)) & 0x3f) | 0x40);
                }
                break;
        case K_TEXT:
                for (unsigned i = 0; i < BLK / 8; i++) {
                        uint64_t x = rnd(&r);
                        for (int b = 0; b < 8; b++, x >>= 5)
                                out[8 * i + b] = (uint8_t)text[x & 31];
                }
                break;
        case K_MEDIA:
                for (unsigned i = 0; i < BLK / 8; i++)
                        w[i] = rnd(&r);
                break;
        default: /* K_HEAP */
                for (unsigned i = 0; i < BLK / 8; i++) {
                        uint64_t x = rnd(&r);
                        w[i] = (x & 3) == 0 ? 0x00007f0000000000ull | (x & 0xfffffff8ull)
                             : (x & 3) == 1 ? (x >> 8) & 0xffff
                                            : 0;
                }
                break;
        }
}

typedef struct Patch {
        unsigned day, gold;
        uint64_t start, len;    /* blocks of the OS region it rewrites */
} Patch;

typedef struct World {
        const VcSynthOpts *o;
        uint64_t nd, nm;        /* blocks of disk and memory */
        uint64_t os_end;        /* the OS region of a gold disk: [0, os_end) */
        uint64_t **gold_disk;   /* [gold][block] before any patch */
        Patch *patches;
        unsigned npatches;
        uint64_t pkg_len[NPACKAGES], pop_len[NPOPULAR];
        uint8_t *buf;           /* WBUF */
        VcProgress prog;
        uint64_t written, total;
} World;

typedef struct File {
        uint64_t start, len;
} File;

typedef struct Parcel {
        char name[64];
        unsigned gold, created;
        Rng rng;
        uint64_t *disk, *mem;
        uint8_t *used;          /* per disk block: 1 if a file holds it */
        File *docs;
        size_t ndocs, capdocs;
        uint64_t *touched;      /* disk blocks used this session (page cache) */
        size_t ntouched, captouched;
        unsigned patched;       /* patches [0, patched) considered */
        bool installed[NPACKAGES];
        uint64_t uniq;
} Parcel;

void vc_synth_defaults(VcSynthOpts *o)
{
        *o = (VcSynthOpts){
                .seed = 1,
                .parcels = 6,
                .versions = 6,
                .memory_size = 4u << 20,
                .disk_size = (12u << 20) + 512, /* not a multiple of the chunk sizes */
                .gold_images = 2,
                .days = 60,
        };
}

static uint64_t uniq_cid(Parcel *p, unsigned kind)
{
        return CID(kind, mix(mix(p->rng.s, 0xabc), p->uniq++));
}

static void patch_apply(const World *w, const Patch *pt, uint64_t *disk, unsigned pidx)
{
        for (uint64_t i = 0; i < pt->len; i++)
                disk[pt->start + i] = CID(K_BIN, mix(0x9a7c4 + pidx, i));
}

/* --- building the world ---------------------------------------------------- */

static int world_init(World *w, const VcSynthOpts *o)
{
        Rng r = { mix(o->seed, 0x601d) };
        w->o = o;
        w->nd = (o->disk_size + BLK - 1) / BLK;
        w->nm = (o->memory_size + BLK - 1) / BLK;
        w->os_end = w->nd * 2 / 5;
        w->buf = malloc(WBUF);
        w->gold_disk = calloc(o->gold_images, sizeof *w->gold_disk);
        if (!w->buf || !w->gold_disk)
                return -ENOMEM;
        for (unsigned g = 0; g < o->gold_images; g++) {
                uint64_t *d = w->gold_disk[g] = calloc(w->nd + 1, sizeof *d);
                if (!d)
                        return -ENOMEM;
                for (uint64_t i = 0; i < w->os_end; i++) {
                        uint64_t x = below(&r, 100);
                        if (x < 5)
                                d[i] = CID(K_ZERO, 0);
                        else if (x < 9)
                                d[i] = CID(K_TEXT, mix(g, i ^ 0x7e47));
                        /* a newer release keeps a third of its predecessor's
                         * programs, at other places */
                        else if (g > 0 && x < 40)
                                d[i] = w->gold_disk[g - 1][below(&r, w->os_end)];
                        else
                                d[i] = CID(K_BIN, mix(g + 1000, i));
                }
        }
        /* About one patch every two weeks, each for one release. */
        w->npatches = o->days / 14 + 1;
        w->patches = calloc(w->npatches, sizeof *w->patches);
        if (!w->patches)
                return -ENOMEM;
        for (unsigned i = 0; i < w->npatches; i++) {
                Patch *pt = &w->patches[i];
                pt->day = (unsigned)(7 + 14 * i + below(&r, 7));
                pt->gold = (unsigned)below(&r, o->gold_images);
                pt->len = w->os_end ? 1 + below(&r, VC_MAX(w->os_end / 12, 1)) : 0;
                pt->start = w->os_end > pt->len ? below(&r, w->os_end - pt->len) : 0;
        }
        for (int i = 0; i < NPACKAGES; i++)
                w->pkg_len[i] = 1 + below(&r, VC_MAX(w->nd / 16, 2));
        for (int i = 0; i < NPOPULAR; i++)
                w->pop_len[i] = 1 + below(&r, 64);
        return 0;
}

static void world_done(World *w)
{
        if (w->gold_disk)
                for (unsigned g = 0; g < w->o->gold_images; g++)
                        free(w->gold_disk[g]);
        free(w->gold_disk);
        free(w->patches);
        free(w->buf);
}

/* --- a parcel's disk -------------------------------------------------------- */

static int touch(Parcel *p, uint64_t blk)
{
        uint64_t *t = vc_grow(p->touched, &p->captouched, p->ntouched, sizeof *t, 256);
        if (!t)
                return -ENOMEM;
        p->touched = t;
        p->touched[p->ntouched++] = blk;
        return 0;
}

/* First fit of len free blocks after a random start in the user region
 * (wrapping); returns false when the disk is full. */
static bool alloc_run(const World *w, Parcel *p, uint64_t len, uint64_t *ret)
{
        uint64_t lo = w->os_end, span = w->nd - lo;
        if (len == 0 || len > span)
                return false;
        uint64_t start = lo + below(&p->rng, span);
        for (uint64_t tries = 0; tries < span; tries++) {
                uint64_t s = lo + (start - lo + tries) % span;
                if (s + len > w->nd)
                        continue;
                uint64_t i = 0;
                while (i < len && !p->used[s + i])
                        i++;
                if (i == len) {
                        memset(p->used + s, 1, len);
                        *ret = s;
                        return true;
                }
                tries += i;
        }
        return false;
}

/* Writes a file of len blocks whose content ids come from fn(seed, i). */
static int write_file(const World *w, Parcel *p, uint64_t len, unsigned kind, uint64_t seed, bool shared,
                      File *ret)
{
        uint64_t s;
        if (!alloc_run(w, p, len, &s))
                return 0; /* disk full: the user gets an error and moves on */
        for (uint64_t i = 0; i < len; i++) {
                p->disk[s + i] = shared ? CID(kind, mix(seed, i)) : uniq_cid(p, kind);
                int r = touch(p, s + i);
                if (r < 0)
                        return r;
        }
        if (ret)
                *ret = (File){ s, len };
        return 1;
}

static int add_doc(Parcel *p, File f)
{
        File *d = vc_grow(p->docs, &p->capdocs, p->ndocs, sizeof *d, 32);
        if (!d)
                return -ENOMEM;
        p->docs = d;
        p->docs[p->ndocs++] = f;
        return 0;
}

/* Moves every user block to the front of the user region, in order: the
 * bytes stay, their places change (the study's day-100 disturbance). */
static int defragment(const World *w, Parcel *p)
{
        /* A file's blocks stay together and in order: its new start is the
         * number of used blocks before its old start. */
        uint32_t *before = malloc((w->nd + 1) * sizeof *before);
        if (!before)
                return -ENOMEM;
        uint64_t dst = w->os_end;
        for (uint64_t i = w->os_end; i < w->nd; i++) {
                before[i] = (uint32_t)(dst - w->os_end);
                if (p->used[i]) {
                        uint64_t c = p->disk[i];
                        p->used[i] = 0;
                        p->disk[i] = CID(K_ZERO, 0);
                        p->disk[dst] = c;
                        p->used[dst++] = 1;
                }
        }
        for (size_t i = 0; i < p->ndocs; i++)
                p->docs[i].start = w->os_end + before[p->docs[i].start];
        free(before);
        return 0;
}

static int session_disk(const World *w, Parcel *p, unsigned day, unsigned v)
{
        int r;
        /* Security patches released since the last session. */
        for (; p->patched < w->npatches && w->patches[p->patched].day <= day; p->patched++)
                if (w->patches[p->patched].gold == p->gold) {
                        const Patch *pt = &w->patches[p->patched];
                        patch_apply(w, pt, p->disk, p->patched);
                        for (uint64_t i = 0; i < pt->len; i++)
                                if ((r = touch(p, pt->start + i)) < 0)
                                        return r;
                }
        if (chance(&p->rng, 3)) {
                /* Reinstall: the gold image (patched) comes back, user files
                 * stay where they were. */
                memcpy(p->disk, w->gold_disk[p->gold], w->os_end * sizeof *p->disk);
                for (unsigned i = 0; i < p->patched; i++)
                        if (w->patches[i].gold == p->gold)
                                patch_apply(w, &w->patches[i], p->disk, i);
        }
        /* Documents: new ones, edits, deletions (the blocks stay on disk
         * until something else is written there). */
        for (uint64_t n = 1 + below(&p->rng, 3); n; n--) {
                File f;
                r = write_file(w, p, 1 + below(&p->rng, 8), K_TEXT, 0, false, &f);
                if (r > 0)
                        r = add_doc(p, f);
                if (r < 0)
                        return r;
        }
        if (p->ndocs && chance(&p->rng, 60)) {
                File *f = &p->docs[below(&p->rng, p->ndocs)];
                uint64_t b = f->start + below(&p->rng, f->len);
                p->disk[b] = uniq_cid(p, K_TEXT);
                if ((r = touch(p, b)) < 0)
                        return r;
        }
        if (p->ndocs > 2 && chance(&p->rng, 40)) {
                size_t i = below(&p->rng, p->ndocs);
                memset(p->used + p->docs[i].start, 0, p->docs[i].len);
                p->docs[i] = p->docs[--p->ndocs];
        }
        /* Software from the shared catalogue. */
        if (chance(&p->rng, 45)) {
                unsigned k = (unsigned)below(&p->rng, NPACKAGES);
                if (!p->installed[k]) {
                        p->installed[k] = true;
                        if ((r = write_file(w, p, w->pkg_len[k], K_BIN, 0x9ac0 + k, true, NULL)) < 0)
                                return r;
                }
        }
        /* Popular downloads: rank k is picked with weight 1 / (k + 1). */
        for (uint64_t n = below(&p->rng, 3); n; n--) {
                double u = (double)below(&p->rng, 1000000) / 1e6, hsum = 0, acc = 0;
                for (int k = 0; k < NPOPULAR; k++)
                        hsum += 1.0 / (k + 1);
                int k = 0;
                for (; k < NPOPULAR - 1; k++) {
                        acc += 1.0 / (k + 1) / hsum;
                        if (u < acc)
                                break;
                }
                if ((r = write_file(w, p, w->pop_len[k], K_MEDIA, 0xd0d0 + (uint64_t)k, true, NULL)) < 0)
                        return r;
        }
        /* Browser cache and temporary files: private, short-lived. */
        File f;
        r = write_file(w, p, 1 + below(&p->rng, VC_MAX(w->nd / 200, 1)), K_MEDIA, 0, false, &f);
        if (r < 0)
                return r;
        if (r > 0 && chance(&p->rng, 70))
                memset(p->used + f.start, 0, f.len);
        if (v > 2 && chance(&p->rng, 6))
                return defragment(w, p);
        return 0;
}

/* --- a parcel's memory ------------------------------------------------------ */

/* A fresh boot: kernel at the bottom, libraries (disk blocks of the OS),
 * page cache of recent files, private heap, zeros. */
static void mem_boot(const World *w, Parcel *p, uint64_t *mem, Rng *r, bool private_heap)
{
        uint64_t nk = w->nm * 6 / 100;
        for (uint64_t i = 0; i < w->nm; i++)
                mem[i] = CID(K_ZERO, 0);
        for (uint64_t i = 0; i < nk; i++)
                mem[i] = CID(K_BIN, mix(0xce4e1 + p->gold, i));
        for (uint64_t n = w->nm * 15 / 100; n && w->os_end; n--)
                mem[nk + below(r, w->nm - nk)] = w->gold_disk[p->gold][below(r, w->os_end / 5 + 1)];
        for (uint64_t n = w->nm * 20 / 100; n; n--)
                mem[nk + below(r, w->nm - nk)] = private_heap ? uniq_cid(p, K_HEAP)
                                                               : CID(K_HEAP, mix(0x901d + p->gold, rnd(r)));
}

static void session_mem(const World *w, Parcel *p)
{
        if (chance(&p->rng, 20)) {
                mem_boot(w, p, p->mem, &p->rng, true);
        } else {
                /* Resumed: a fifth to two fifths of the pages change, in
                 * runs (a process's heap, a freed buffer), as memory does. */
                uint64_t n = w->nm * (20 + below(&p->rng, 20)) / 100;
                while (n) {
                        uint64_t i = below(&p->rng, w->nm), x = below(&p->rng, 100);
                        uint64_t run = 1 + below(&p->rng, 32); /* VC_MIN evaluates twice */
                        run = VC_MIN(VC_MIN(n, run), w->nm - i);
                        for (uint64_t j = i; j < i + run; j++) {
                                if (x < 50)
                                        p->mem[j] = uniq_cid(p, K_HEAP);
                                else if (x < 75)
                                        p->mem[j] = CID(K_ZERO, 0);
                                else if (w->os_end)
                                        p->mem[j] = w->gold_disk[p->gold][below(&p->rng, w->os_end / 5 + 1)];
                        }
                        n -= run;
                }
        }
        /* Page cache of the files used in this session. */
        for (size_t i = 0; i < p->ntouched && i < w->nm / 4; i++)
                p->mem[below(&p->rng, w->nm)] = p->disk[p->touched[i]];
        p->ntouched = 0;
}

/* --- writing ----------------------------------------------------------------- */

static int write_image(World *w, const char *path, const uint64_t *blocks, uint64_t size)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return vc_errf(-errno, "cannot create %s: %s", path, strerror(errno));
        int r = 0;
        uint64_t off = 0;
        while (off < size && r == 0) {
                uint32_t n = 0;
                while (n < WBUF && off + n < size) {
                        gen_block(blocks[(off + n) / BLK], w->buf + n);
                        n += BLK;
                }
                n = (uint32_t)VC_MIN((uint64_t)n, size - off);
                r = vc_write_full(fd, w->buf, n);
                off += n;
                w->written += n;
                vc_progress(&w->prog, w->written);
        }
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r < 0)
                return vc_errf(r, "cannot write %s: %s", path, strerror(-r));
        return 0;
}

static int check_outdir(const char *dir)
{
        DIR *d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        return vc_errf(-errno, "cannot open %s: %s", dir, strerror(errno));
                int r = vc_mkdir_p(dir, 0755);
                return r < 0 ? vc_errf(r, "cannot create %s: %s", dir, strerror(-r)) : 0;
        }
        struct dirent *de;
        int r = 0;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        r = vc_errf(-EEXIST, "%s is not empty: synth writes into a new or empty directory", dir);
        closedir(d);
        return r;
}

static void parcel_done(Parcel *p)
{
        free(p->disk);
        free(p->mem);
        free(p->used);
        free(p->docs);
        free(p->touched);
}

static int synth_parcel(World *w, unsigned i, const char *outdir, FILE *manifest)
{
        const VcSynthOpts *o = w->o;
        Parcel p = { 0 };
        p.rng.s = mix(o->seed, 0x9a5ce1 + i);
        p.gold = i % o->gold_images;
        if (i < VC_ARRAY_SIZE(users))
                snprintf(p.name, sizeof p.name, "%s-%s", users[i], os_names[p.gold % VC_ARRAY_SIZE(os_names)]);
        else
                snprintf(p.name, sizeof p.name, "%s%u-%s", users[i % VC_ARRAY_SIZE(users)],
                         i / (unsigned)VC_ARRAY_SIZE(users), os_names[p.gold % VC_ARRAY_SIZE(os_names)]);
        /* Parcels join over the first third of the span (the first at once). */
        p.created = i == 0 ? 0 : (unsigned)below(&p.rng, o->days / 3 + 1);
        p.disk = calloc(w->nd + 1, sizeof *p.disk);
        p.mem = calloc(w->nm + 1, sizeof *p.mem);
        p.used = calloc(w->nd + 1, 1);
        char path[PATH_MAX];
        int r = 0;
        if (!p.disk || !p.mem || !p.used) {
                r = -ENOMEM;
                goto out;
        }
        snprintf(path, sizeof path, "%s/%s", outdir, p.name);
        if (mkdir(path, 0755) < 0) {
                r = vc_errf(-errno, "cannot create %s: %s", path, strerror(errno));
                goto out;
        }
        /* Version 1: the gold image as patched on the day of creation, and
         * the gold's suspended memory (the same for all its parcels). */
        memcpy(p.disk, w->gold_disk[p.gold], w->nd * sizeof *p.disk);
        for (; p.patched < w->npatches && w->patches[p.patched].day <= p.created; p.patched++)
                if (w->patches[p.patched].gold == p.gold)
                        patch_apply(w, &w->patches[p.patched], p.disk, p.patched);
        Rng gr = { mix(o->seed, 0x601dee + p.gold) };
        mem_boot(w, &p, p.mem, &gr, false);
        int64_t ts = EPOCH + (int64_t)p.created * 86400 + 8 * 3600 + (int64_t)below(&p.rng, 8 * 3600);
        unsigned span = o->days - VC_MIN(p.created, o->days - 1);
        for (unsigned v = 1; v <= o->versions; v++) {
                if (v > 1) {
                        /* Sessions spread over the rest of the span: gaps of
                         * about span / versions days, from hours to a week. */
                        uint64_t mean = (uint64_t)span * 86400 / o->versions;
                        ts += (int64_t)(mean / 2 + below(&p.rng, mean + 1) + 3600);
                        unsigned day = (unsigned)((ts - EPOCH) / 86400);
                        if ((r = session_disk(w, &p, day, v)) < 0)
                                goto out;
                        session_mem(w, &p);
                }
                char rel[2][128];
                snprintf(rel[0], sizeof rel[0], "%s/v%u.mem", p.name, v);
                snprintf(rel[1], sizeof rel[1], "%s/v%u.disk", p.name, v);
                for (int m = 0; m < 2; m++) {
                        snprintf(path, sizeof path, "%s/%s", outdir, rel[m]);
                        r = write_image(w, path, m ? p.disk : p.mem, m ? o->disk_size : o->memory_size);
                        if (r < 0)
                                goto out;
                }
                fprintf(manifest, "%s\t%u\t%" PRId64 "\t%s\t%s\n", p.name, v, ts, rel[0], rel[1]);
        }
out:
        parcel_done(&p);
        return r;
}

int vc_synth(const char *outdir, const VcSynthOpts *o)
{
        if (!o->parcels || !o->versions || !o->gold_images || !o->days)
                return vc_errf(-EINVAL, "parcels, versions, gold images and days must be at least 1");
        int r = check_outdir(outdir);
        if (r < 0)
                return r;
        World w = { 0 };
        char *text = NULL;
        size_t len = 0;
        FILE *manifest = open_memstream(&text, &len);
        if (!manifest)
                return -ENOMEM;
        fprintf(manifest, "# vmcas synth --seed %" PRIu64 " --parcels %u --versions %u --memory-size %" PRIu64
                          " --disk-size %" PRIu64 " --gold-images %u --days %u\n",
                o->seed, o->parcels, o->versions, o->memory_size, o->disk_size, o->gold_images, o->days);
        fprintf(manifest, "parcel\tversion\ttimestamp\tmemory\tdisk\n");
        r = world_init(&w, o);
        vc_progress_init(&w.prog, "synth", (uint64_t)o->parcels * o->versions * (o->memory_size + o->disk_size),
                         o->quiet);
        for (unsigned i = 0; i < o->parcels && r == 0; i++)
                r = synth_parcel(&w, i, outdir, manifest);
        vc_progress_end(&w.prog, w.written);
        world_done(&w);
        if (fclose(manifest) != 0 && r == 0)
                r = -ENOMEM;
        if (r == 0) {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/manifest.tsv", outdir);
                r = vc_write_file_atomic(path, text, len, 0644);
                if (r < 0)
                        r = vc_errf(r, "cannot write %s: %s", path, strerror(-r));
        }
        free(text);
        return r;
}
