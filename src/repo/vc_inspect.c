/* stat and verify: keyless reports over a whole store. */
#include "repo/vc_repo.h"
#include "core/vc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- stat ------------------------------------------------------------------- */

static int len_cb(const VcChunkInfo *ci, void *ctx)
{
        return vc_tagset_add(ctx, ci->domain, ci->tag, ci->len) < 0 ? -ENOMEM : 0;
}

typedef struct {
        VcTagSet *lens, *seen;
        VcParcelStat *ps;
} StatCtx;

static int stat_visit(uint64_t domain, const uint8_t tag[32], int kind, void *ctx)
{
        StatCtx *sc = ctx;
        int r = vc_tagset_add(sc->seen, domain, tag, 0);
        if (r <= 0)
                return r;
        uint64_t len = 0;
        vc_tagset_get(sc->lens, domain, tag, &len);
        if (kind == VC_KIND_DATA)
                sc->ps->data_bytes += len;
        else
                sc->ps->meta_bytes += len;
        return 0;
}

int vc_repo_stat(VcStore *s, VcStoreStat *st)
{
        memset(st, 0, sizeof *st);
        VcTxn *t = NULL;
        VcTagSet *lens = NULL;
        VcParcel *ps = NULL;
        size_t np = 0;
        int r = vc_store_stat(s, &st->domains, &st->ndomains, &st->index_bytes);
        if (r < 0)
                return r;
        for (size_t i = 0; i < st->ndomains; i++) {
                st->data_bytes += st->domains[i].data_bytes;
                st->meta_bytes += st->domains[i].meta_bytes;
                st->disk_bytes += st->domains[i].pack_bytes;
        }
        st->disk_bytes += st->index_bytes;
        if ((r = vc_tagset_new(&lens)) < 0 || (r = vc_txn_begin(s, false, &t)) < 0 ||
            (r = vc_txn_iter_chunks(t, len_cb, lens)) < 0 || (r = vc_repo_parcels(t, &ps, &np)) < 0)
                goto out;
        st->parcels = calloc(np + 1, sizeof *st->parcels);
        if (!st->parcels) {
                r = -ENOMEM;
                goto out;
        }
        st->nparcels = np;
        for (size_t i = 0; i < np && r >= 0; i++) {
                VcParcelStat *x = &st->parcels[i];
                x->p = ps[i];
                VcVersion *vs = NULL;
                size_t nv = 0;
                if ((r = vc_repo_versions(t, &ps[i], &vs, &nv)) < 0)
                        break;
                StatCtx sc = { .lens = lens, .ps = x };
                if ((r = vc_tagset_new(&sc.seen)) < 0) {
                        free(vs);
                        break;
                }
                for (size_t j = 0; j < nv && r >= 0; j++) {
                        x->versions++;
                        x->logical_bytes += vs[j].mem_size + vs[j].disk_size;
                        x->meta_bytes += VC_VERSION_REC_LEN;
                        r = vc_repo_walk(s, &ps[i], &vs[j], NULL, stat_visit, &sc);
                }
                vc_tagset_free(sc.seen);
                free(vs);
                st->meta_bytes += VC_VERSION_REC_LEN * (uint64_t)x->versions;
                st->logical_bytes += x->logical_bytes;
                for (size_t d = 0; d < st->ndomains; d++)
                        if (st->domains[d].domain == ps[i].node_domain)
                                x->disk_bytes = st->domains[d].pack_bytes;
        }
out:
        vc_txn_abort(t);
        vc_tagset_free(lens);
        free(ps);
        if (r < 0)
                vc_repo_stat_free(st);
        return r < 0 ? r : 0;
}

void vc_repo_stat_free(VcStoreStat *st)
{
        free(st->parcels);
        free(st->domains);
        st->parcels = NULL;
        st->domains = NULL;
}

/* ---- verify ----------------------------------------------------------------- */

typedef struct Damage {
        uint64_t domain;
        uint8_t tag[32];
        bool has_tag;
        char what[768];
        VcRepair repair;
        char users[512];
        size_t nusers;
        uint64_t last_parcel;
        uint32_t last_version;
} Damage;

typedef struct VerifyCtx {
        VcStore *s;
        Damage *d;
        size_t nd, capd;
        VcTagSet *damaged;     /* (domain, tag) -> index into d */
        VcTxn *t;
        const VcParcel *p;
        uint32_t version;
        void (*report)(const char *, const char *, void *);
        void *rctx;
        VcVerifyStats *st;
} VerifyCtx;

static void on_damage(uint64_t domain, const uint8_t *tag, const char *what, VcRepair repair, void *ctx)
{
        VerifyCtx *v = ctx;
        if (v->nd == v->capd) {
                size_t c = v->capd ? 2 * v->capd : 16;
                Damage *x = realloc(v->d, c * sizeof *x);
                if (!x)
                        return;
                v->d = x;
                v->capd = c;
        }
        Damage *d = &v->d[v->nd];
        memset(d, 0, sizeof *d);
        d->domain = domain;
        if (tag) {
                memcpy(d->tag, tag, 32);
                d->has_tag = true;
                uint64_t prev;
                if (vc_tagset_get(v->damaged, domain, tag, &prev))
                        return; /* one line per chunk */
                vc_tagset_add(v->damaged, domain, tag, v->nd);
        }
        snprintf(d->what, sizeof d->what, "%s", what);
        d->repair = repair;
        v->nd++;
}

/* Names version `version` of p as broken by d: "alice version 3, 4; bob version 1". */
static void add_user(Damage *d, const VcParcel *p, uint32_t version)
{
        char buf[VC_NAME_MAX + 32];
        if (d->nusers && d->last_parcel == p->id && d->last_version == version)
                return; /* a chunk used twice in one version */
        if (d->nusers && d->last_parcel == p->id)
                snprintf(buf, sizeof buf, ", %u", version);
        else
                snprintf(buf, sizeof buf, "%sparcel %s version %u", d->nusers ? "; " : "", p->name, version);
        size_t used = strlen(d->users);
        if (used + strlen(buf) + 4 < sizeof d->users)
                strcat(d->users, buf);
        else if (!strstr(d->users, "..."))
                strcat(d->users, "...");
        d->nusers++;
        d->last_parcel = p->id;
        d->last_version = version;
}

static int verify_visit(uint64_t domain, const uint8_t tag[32], int kind, void *ctx)
{
        VerifyCtx *v = ctx;
        uint64_t at;
        if (!vc_tagset_get(v->damaged, domain, tag, &at)) {
                int r = vc_txn_has_chunk(v->t, domain, tag);
                if (r != 0)
                        return r < 0 ? r : 0;
                on_damage(domain, tag, kind == VC_KIND_META ? "keyring node missing from the store"
                                                            : "chunk missing from the store",
                          VC_REPAIR_REINDEX_IF, v);
                if (!vc_tagset_get(v->damaged, domain, tag, &at))
                        return -ENOMEM;
        }
        add_user(&v->d[at], v->p, v->version);
        return 0;
}

static void verify_report(VerifyCtx *v, const char *msg, VcRepair repair)
{
        v->st->problems++;
        v->st->by_repair[repair]++;
        v->report(msg, vc_repair_text(repair), v->rctx);
}

int vc_repo_verify(VcStore *s, bool full, void (*report)(const char *msg, const char *repair, void *ctx),
                   void *ctx, VcVerifyStats *st)
{
        memset(st, 0, sizeof *st);
        VerifyCtx v = { .s = s, .report = report, .rctx = ctx, .st = st };
        VcCheckStats cs = { 0 };
        VcParcel *ps = NULL;
        size_t np = 0;
        char msg[2048];
        int r = vc_tagset_new(&v.damaged);
        if (r < 0)
                return r;
        r = vc_store_check_ex(s, full, on_damage, &v, &cs);
        if (r < 0)
                goto out;
        st->chunks_checked = cs.chunks_checked;
        st->bytes_checked = cs.bytes_checked;
        if ((r = vc_txn_begin(s, false, &v.t)) < 0)
                goto out;
        /* A catalog table with a damaged page is not read at all. */
        if (!cs.catalog_unchecked && (r = vc_repo_parcels(v.t, &ps, &np)) < 0)
                goto out;
        for (size_t i = 0; i < np; i++) {
                VcVersion *vs = NULL;
                size_t nv = 0;
                st->parcels++;
                if ((r = vc_repo_versions(v.t, &ps[i], &vs, &nv)) < 0)
                        goto out;
                if (ps[i].latest && nv == 0) {
                        snprintf(msg, sizeof msg, "parcel '%s' names version %u but has no version record",
                                 ps[i].name, ps[i].latest);
                        verify_report(&v, msg, VC_REPAIR_BACKUP);
                }
                for (size_t j = 0; j < nv; j++) {
                        st->versions++;
                        /* With the chunk index damaged, every look-up could
                         * miss: walking the versions would only add noise. */
                        if (cs.index_unchecked)
                                continue;
                        v.p = &ps[i];
                        v.version = vs[j].version;
                        vc_errclear();
                        int w = vc_repo_walk(s, &ps[i], &vs[j], NULL, verify_visit, &v);
                        if (w < 0 && vc_txn_dead(v.t)) {
                                free(vs);
                                r = w;
                                goto out;
                        }
                        if (w < 0) {
                                snprintf(msg, sizeof msg, "%s", vc_errmsg(w));
                                vc_errclear();
                                verify_report(&v, msg, VC_REPAIR_NONE);
                        }
                }
                free(vs);
        }
        for (size_t i = 0; i < v.nd; i++) {
                Damage *d = &v.d[i];
                char name[64] = "?", hex[65] = "";
                if (d->domain && vc_store_domain_name(s, d->domain, name, sizeof name) < 0)
                        snprintf(name, sizeof name, "domain %" PRIu64, d->domain);
                vc_errclear();
                if (d->has_tag) {
                        vc_hex(d->tag, 32, hex);
                        snprintf(msg, sizeof msg, "chunk %s in %s: %s; %s%s", hex, name, d->what,
                                 d->nusers ? "breaks " : "used by no version", d->users);
                } else if (d->domain)
                        snprintf(msg, sizeof msg, "%s: %s", name, d->what);
                else
                        snprintf(msg, sizeof msg, "%s", d->what);
                verify_report(&v, msg, d->repair);
        }
        if (cs.catalog_unchecked) {
                st->versions_unchecked = true;
                snprintf(msg, sizeof msg, "the parcels and versions were not checked: the catalog's pages are "
                         "damaged (reindex copies the catalog out of the damaged index if a snapshot of it reads "
                         "back whole)");
                verify_report(&v, msg, VC_REPAIR_REINDEX);
        }
        if (cs.index_unchecked && st->versions) {
                st->versions_unchecked = true;
                snprintf(msg, sizeof msg, "the keyrings and chunks of the %" PRIu64 " versions were not checked: "
                         "the chunk index is damaged", st->versions);
                verify_report(&v, msg, VC_REPAIR_REINDEX);
        }
out:
        vc_txn_abort(v.t);
        vc_tagset_free(v.damaged);
        free(v.d);
        free(ps);
        return r < 0 ? r : (int)VC_MIN(st->problems, (uint64_t)INT32_MAX);
}
