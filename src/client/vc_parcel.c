/* Keys, authenticated records and parcel creation. */
#include "client/vc_client_int.h"
#include "client/vc_keystore.h"
#include "core/vc_limits.h"
#include "core/vc_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vc_threads(void)
{
        return vc_pool_threads();
}

const char *vc_host_name(void)
{
        static char name[VC_HOST_MAX + 1];
        const char *e = getenv("VMCAS_HOST");
        if (e && *e)
                snprintf(name, sizeof name, "%s", e);
        else if (gethostname(name, sizeof name) < 0 || !name[0])
                snprintf(name, sizeof name, "localhost");
        name[VC_HOST_MAX] = 0;
        for (char *c = name; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                      *c == '_' || *c == '-'))
                        *c = '-';
        if (name[0] == '.' || name[0] == '-')
                name[0] = 'h';
        return name;
}

/* ---- keys ----------------------------------------------------------------- */

void keys_wipe(Keys *k)
{
        vc_wipe(k, sizeof *k);
}

void key_check(const uint8_t secret[VC_KEY_LEN], uint8_t out[16])
{
        vc_key_check(secret, out);
}

void keys_derive(Keys *k)
{
        vc_derive(k->parcel, "node", k->node);
        vc_derive(k->parcel, "version-wrap", k->wrap);
        vc_derive(k->parcel, "parcel-record", k->record);
}

void record_mac(const Keys *k, const char *name, const uint8_t *rec, size_t len, uint8_t mac[32])
{
        static const char label[] = "vmcas parcel record";
        uint8_t buf[sizeof label + 1 + VC_NAME_MAX + VC_PARCEL_REC_MAX];
        size_t nl = strlen(name), body = len - VC_RECORD_MAC_LEN;
        memcpy(buf, label, sizeof label - 1);
        buf[sizeof label - 1] = (uint8_t)nl;
        memcpy(buf + sizeof label, name, nl);
        memcpy(buf + sizeof label + nl, rec, body);
        vc_hmac256(k->record, buf, sizeof label + nl + body, mac);
}

int sealer_for(const VcParcel *p, const Keys *k, VcSealer **ret)
{
        const uint8_t *secret = p->policy == VC_POLICY_GROUP ? k->group
                              : p->policy == VC_POLICY_ALL ? NULL : k->parcel;
        return vc_sealer_new(p->policy, p->comp, secret, ret);
}

/* The parcel's secret, checked against the record's key check (a wrong
 * key file is told apart from a changed record). */
static int parcel_key_load(const uint8_t uuid[16], const VcParcel *p, Keys *k)
{
        uint8_t chk[16];
        int r = vc_key_load(uuid, "parcel", p->name, k->parcel);
        if (r < 0)
                return r;
        key_check(k->parcel, chk);
        if (!vc_hash_eq(chk, p->check, 16))
                return vc_errf(-EKEYREJECTED, "the key file of parcel '%s' holds the wrong key (or the parcel's "
                               "record was changed outside vmcas)", p->name);
        keys_derive(k);
        return 0;
}

/* The group's secret, once the record that names the group is authentic. */
static int group_key_load(const uint8_t uuid[16], const VcParcel *p, Keys *k)
{
        uint8_t chk[16];
        if (p->policy != VC_POLICY_GROUP)
                return 0;
        int r = vc_key_load(uuid, "group", p->group, k->group);
        if (r < 0)
                return r;
        key_check(k->group, chk);
        if (!vc_hash_eq(chk, p->group_check, 16))
                return vc_errf(-EKEYREJECTED, "the key file of group '%s' holds the wrong key for parcel '%s'",
                               p->group, p->name);
        return 0;
}

int parcel_open(VcBackend *b, const char *name, VcParcel *p, Keys *k)
{
        VcParcelInfo pi;
        int r = vc_cat_parcel(b, name, &pi);
        if (r < 0)
                return r;
        if (strcmp(pi.name, name) != 0)
                return vc_errf(-EBADMSG, "the store answered for parcel '%s' with parcel '%s'", name, pi.name);
        if ((r = vc_parcel_unpack(pi.record, pi.record_len, name, p)) < 0)
                return r;
        if ((r = parcel_key_load(vc_backend_uuid(b), p, k)) < 0) {
                keys_wipe(k);
                return r;
        }
        uint8_t mac[32];
        record_mac(k, name, pi.record, pi.record_len, mac);
        /* the domains are a function of the record's own fields: a record
         * pointing a private parcel at a shared pool is refused too */
        VcParcel want = *p;
        vc_parcel_domains(&want);
        if (!vc_hash_eq(mac, p->mac, 32) || strcmp(want.node_dom, p->node_dom) != 0 ||
            strcmp(want.data_dom, p->data_dom) != 0) {
                keys_wipe(k);
                return vc_errf(-EBADMSG, "the record of parcel '%s' was changed outside vmcas (it fails its "
                               "authentication); nothing was written", name);
        }
        if ((r = group_key_load(vc_backend_uuid(b), p, k)) < 0) {
                keys_wipe(k);
                return r;
        }
        p->latest = pi.latest;
        snprintf(p->owner, sizeof p->owner, "%s", pi.owner);
        return 0;
}

int version_open(VcBackend *b, const VcParcel *p, const Keys *k, uint32_t version, VcVersion *v, VcEntry *rm,
                 VcEntry *rd)
{
        VcEntry aux[2];
        int r = version_open_aux(b, p, k, version, v, rm, rd, aux);
        vc_wipe(aux, sizeof aux);
        return r;
}

int version_open_aux(VcBackend *b, const VcParcel *p, const Keys *k, uint32_t version, VcVersion *v, VcEntry *rm,
                     VcEntry *rd, VcEntry aux[2])
{
        VcVersionInfo vi;
        int r = vc_cat_version(b, p->name, version, &vi);
        if (r < 0)
                return r;
        memset(v, 0, sizeof *v);
        if ((r = vc_version_unpack(vi.record, vi.record_len, v)) < 0)
                return vc_errf_replace(r, "the record of version %u of parcel '%s' is malformed (changed outside "
                                       "vmcas?)", version, p->name);
        v->seq = vi.seq;
        uint8_t aad[VC_VERSION_AAD_LEN], roots[128] = { 0 };
        size_t alen = vc_version_aad(v, aad);
        r = vc_gcm_open(k->wrap, aad, alen, v->wrapped, v->format == 2 ? VC_WRAPPED_LEN_V2 : VC_WRAPPED_LEN, roots);
        if (r == -EKEYREJECTED)
                return vc_errf(r, "version %u of parcel '%s' does not open with this key (wrong key, or a record "
                               "changed outside vmcas)", version, p->name);
        if (r < 0)
                return r;
        if (v->version != version || memcmp(v->uuid, p->uuid, 16) != 0 || v->mem_size != p->mem_size ||
            v->disk_size != p->disk_size) {
                vc_wipe(roots, sizeof roots);
                return vc_errf(-EBADMSG, "the store answered for version %u of parcel '%s' with another record "
                               "(version %u%s)", version, p->name, v->version,
                               memcmp(v->uuid, p->uuid, 16) ? " of another parcel" : "");
        }
        memcpy(rm->tag, v->mem_root, 32);
        memcpy(rm->key, roots, 32);
        memcpy(rd->tag, v->disk_root, 32);
        memcpy(rd->key, roots + 32, 32);
        memcpy(aux[0].tag, v->machine_root, 32);
        memcpy(aux[0].key, roots + 64, 32);
        memcpy(aux[1].tag, v->order_root, 32);
        memcpy(aux[1].key, roots + 96, 32);
        vc_wipe(roots, sizeof roots);
        return 0;
}

/* ---- keyrings through the interface ----------------------------------------- */

typedef struct {
        VcBackend *b;
        const VcParcel *p;
} NodesCtx;

typedef struct {
        vc_node_got_fn got;
        void *gctx;
} NodeFwd;

static int node_fwd(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        NodeFwd *f = ctx;
        return f->got(idx, data, len, f->gctx);
}

static int nodes_get(const uint8_t *tags, size_t n, vc_node_got_fn got, void *gctx, void *ctx)
{
        NodesCtx *nc = ctx;
        NodeFwd f = { got, gctx };
        int r = vc_chunks_get(nc->b, nc->p->name, nc->p->node_dom, tags, n, node_fwd, &f);
        if (r < 0)
                return vc_errf_prefix(r, "the keyrings of parcel '%s'", nc->p->name);
        return 0;
}

int read_entries(VcBackend *b, const VcParcel *p, const Keys *k, const VcVersion *v, const VcEntry *rm,
                 const VcEntry *rd, VcEntry **mem, uint64_t *nmem, VcEntry **disk, uint64_t *ndisk)
{
        return read_entries_nodes(b, p, k, v, rm, rd, mem, nmem, disk, ndisk, NULL, NULL);
}

int read_entries_nodes(VcBackend *b, const VcParcel *p, const Keys *k, const VcVersion *v, const VcEntry *rm,
                       const VcEntry *rd, VcEntry **mem, uint64_t *nmem, VcEntry **disk, uint64_t *ndisk,
                       VcTreeNodes *mem_nodes, VcTreeNodes *disk_nodes)
{
        /* sizes from the store: checked before they size anything */
        int r;
        if ((r = vc_image_size_check("the memory image", v->mem_size, p->chunk_size)) < 0 ||
            (r = vc_image_size_check("the disk image", v->disk_size, p->chunk_size)) < 0)
                return vc_errf_prefix(r, "version %u of parcel '%s'", v->version, p->name);
        *nmem = vc_chunk_count(v->mem_size, p->chunk_size);
        *ndisk = vc_chunk_count(v->disk_size, p->chunk_size);
        *mem = calloc(*nmem + 1, sizeof(VcEntry));
        *disk = calloc(*ndisk + 1, sizeof(VcEntry));
        NodesCtx nc = { b, p };
        if (!*mem || !*disk)
                r = -ENOMEM;
        else if ((r = vc_tree_read_nodes(k->node, rm, *nmem, nodes_get, &nc, *mem, mem_nodes)) >= 0 &&
                 (r = vc_tree_read_nodes(k->node, rd, *ndisk, nodes_get, &nc, *disk, disk_nodes)) < 0)
                vc_tree_nodes_free(mem_nodes);
        if (r < 0)
                vc_errf_prefix(r, "version %u", v->version);
        if (r < 0) {
                free(*mem);
                free(*disk);
                *mem = *disk = NULL;
        }
        return r;
}

int read_aux(VcBackend *b, const VcParcel *p, const Keys *k, const VcVersion *v, int which, const VcEntry *root,
             uint8_t **buf, size_t *len)
{
        uint64_t size = which == 0 ? v->machine_size : v->order_size;
        const char *what = which == 0 ? "machine" : "read order";
        *buf = NULL;
        *len = 0;
        if (size == 0)
                return 0;
        if (size > (which == 0 ? VC_MACHINE_MAX : VC_ORDER_MAX))
                return vc_errf(-EBADMSG, "version %u of parcel '%s' names a %s of %" PRIu64 " bytes, more than "
                               "vmcas writes", v->version, p->name, what, size);
        uint64_t n = vc_chunk_count(size, p->chunk_size);
        VcEntry *e = calloc(n + 1, sizeof *e);
        uint8_t *out = malloc(size);
        VcSealer *sl = NULL;
        NodesCtx nc = { b, p };
        int r = !e || !out ? -ENOMEM : vc_tree_read_levels(k->node, root, n, nodes_get, &nc, e);
        if (r >= 0)
                r = sealer_for(p, k, &sl);
        if (r >= 0) {
                Source src = { .size = size, .what = what, .fd = -1, .b = b, .p = p, .e = e, .sealer = sl };
                r = source_read(&src, 0, out, (size_t)size);
        }
        vc_sealer_free(sl);
        if (e)
                vc_wipe(e, (n + 1) * sizeof *e);
        free(e);
        if (r < 0) {
                free(out);
                return vc_errf_prefix(r, "the %s of version %u of parcel '%s'", what, v->version, p->name);
        }
        *buf = out;
        *len = (size_t)size;
        return 0;
}

int nodes_get_pub(const uint8_t *tags, size_t n, vc_node_got_fn got, void *gctx, void *ctx)
{
        const NodesCtxPub *pc = ctx;
        NodesCtx nc = { pc->b, pc->p };
        return nodes_get(tags, n, got, gctx, &nc);
}

/* ---- sources ------------------------------------------------------------------- */

int source_open_file(const char *path, const char *what, uint64_t want, Source *src)
{
        memset(src, 0, sizeof *src);
        src->fd = -1;
        src->what = what;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return vc_errf(-errno, "cannot open the %s image '%s': %s", what, path, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return vc_errf(-EINVAL, "the %s image '%s' is not a regular file", what, path);
        }
        if ((uint64_t)st.st_size != want) {
                close(fd);
                return vc_errf(-EINVAL, "the %s image '%s' is %llu bytes, but the parcel's %s image is %llu bytes",
                               what, path, (unsigned long long)st.st_size, what, (unsigned long long)want);
        }
        src->fd = fd;
        src->size = want;
        return 0;
}

typedef struct {
        Source *src;
        uint8_t *buf;
        uint64_t off;
        const uint64_t *pos;       /* chunk index of each requested tag */
} SrcGot;

static int src_got(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        SrcGot *g = ctx;
        Source *src = g->src;
        uint64_t cs = src->p->chunk_size, j = g->pos[idx];
        size_t n = vc_chunk_len(src->size, src->p->chunk_size, j);
        int r = vc_unseal(src->sealer, data, len, src->e[j].tag, src->e[j].key, g->buf + (j * cs - g->off), n, false);
        if (r < 0) {
                char hex[65];
                vc_hex(src->e[j].tag, 32, hex);
                return vc_errf_prefix(r, "chunk %s (%s image of '%s', chunk %" PRIu64 ")", hex, src->what,
                                      src->p->name, j);
        }
        return 0;
}

int source_read(Source *src, uint64_t off, uint8_t *buf, size_t len)
{
        if (src->zeros) {
                memset(buf, 0, len);
                return 0;
        }
        if (src->mem) {
                memcpy(buf, src->mem + off, len);
                return 0;
        }
        if (src->fd >= 0) {
                int r = vc_pread_full(src->fd, buf, len, (off_t)off);
                if (r < 0)
                        return vc_errf(r, "reading the %s image: %s", src->what,
                                       r == -EIO ? "the file is shorter than it was" : strerror(-r));
                return 0;
        }
        /* Both chunk sizes are powers of two dividing the batch, so a
         * batch covers whole chunks of the source. */
        uint64_t cs = src->p->chunk_size, n = 0;
        uint64_t first = off / cs, last = (off + len + cs - 1) / cs;
        _vc_cleanup_(vc_freep) uint8_t *tags = malloc((last - first) * 32 + 1);
        _vc_cleanup_(vc_freep) uint64_t *pos = malloc((last - first) * sizeof *pos + 1);
        if (!tags || !pos)
                return -ENOMEM;
        for (uint64_t j = first; j < last; j++) {
                if (vc_entry_is_zero(&src->e[j])) {
                        memset(buf + (j * cs - off), 0, vc_chunk_len(src->size, src->p->chunk_size, j));
                        continue;
                }
                memcpy(tags + 32 * n, src->e[j].tag, 32);
                pos[n++] = j;
        }
        SrcGot g = { src, buf, off, pos };
        return vc_chunks_get(src->b, src->p->name, src->p->data_dom, tags, n, src_got, &g);
}

/* ---- peeking (no key) ------------------------------------------------------------- */

int vc_parcel_peek(VcBackend *b, const char *name, VcParcel *p)
{
        VcParcelInfo pi;
        int r = vc_cat_parcel(b, name, &pi);
        if (r < 0 || (r = vc_parcel_unpack(pi.record, pi.record_len, name, p)) < 0)
                return r;
        p->latest = pi.latest;
        snprintf(p->owner, sizeof p->owner, "%s", pi.owner);
        return 0;
}

int vc_versions_peek(VcBackend *b, const char *name, VcVersion **ret, size_t *n)
{
        VcVersionInfo *vi = NULL;
        size_t nv = 0;
        int r = vc_cat_versions(b, name, &vi, &nv);
        if (r < 0)
                return r;
        VcVersion *v = calloc(nv + 1, sizeof *v);
        if (!v) {
                free(vi);
                return -ENOMEM;
        }
        for (size_t i = 0; i < nv && r >= 0; i++) {
                r = vc_version_unpack(vi[i].record, vi[i].record_len, &v[i]);
                v[i].seq = vi[i].seq;
        }
        free(vi);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *n = nv;
        return 0;
}

/* ---- leases of this host ------------------------------------------------------------ */

static int lease_path(const uint8_t uuid[16], const char *name, char *buf, size_t len)
{
        char dir[PATH_MAX];
        int r = vc_keystore_dir(uuid, dir, sizeof dir);
        if (r < 0)
                return r;
        /* per host too, so that hosts sharing a key directory (tests, a
         * home directory on NFS) keep their leases apart */
        return (size_t)snprintf(buf, len, "%s/lease-%s@%s", dir, name, vc_host_name()) < len ? 0 : -ENAMETOOLONG;
}

int lease_token_load(const uint8_t uuid[16], const char *name, uint8_t token[VC_LEASE_TOKEN_LEN])
{
        char path[PATH_MAX];
        uint8_t *buf = NULL;
        size_t n;
        if (lease_path(uuid, name, path, sizeof path) < 0)
                return 0;
        int r = vc_read_file(path, &buf, &n, 256);
        if (r < 0) {
                vc_errclear();
                return 0;
        }
        char hex[2 * VC_LEASE_TOKEN_LEN + 1] = "";
        if (n >= 2 * VC_LEASE_TOKEN_LEN)
                memcpy(hex, buf, 2 * VC_LEASE_TOKEN_LEN);
        free(buf);
        return vc_unhex(hex, token, VC_LEASE_TOKEN_LEN) == 0 ? 1 : 0;
}

int lease_token_save(const uint8_t uuid[16], const char *name, const uint8_t token[VC_LEASE_TOKEN_LEN])
{
        char path[PATH_MAX], dir[PATH_MAX], body[2 * VC_LEASE_TOKEN_LEN + 2];
        int r = vc_keystore_dir(uuid, dir, sizeof dir);
        if (r < 0 || (r = lease_path(uuid, name, path, sizeof path)) < 0)
                return r;
        if ((r = vc_keystore_mkdir(uuid, NULL, 0)) < 0)
                return r;
        vc_hex(token, VC_LEASE_TOKEN_LEN, body);
        strcat(body, "\n");
        r = vc_write_file_atomic(path, body, strlen(body), 0600);
        return r < 0 ? vc_errf(r, "cannot save this host's lease in %s: %s", path, strerror(-r)) : 0;
}

void lease_token_forget(const uint8_t uuid[16], const char *name)
{
        char path[PATH_MAX];
        if (lease_path(uuid, name, path, sizeof path) == 0)
                unlink(path);
}

int lease_for_checkin(VcBackend *b, const char *name, uint8_t token[VC_LEASE_TOKEN_LEN])
{
        if (lease_token_load(vc_backend_uuid(b), name, token))
                return 0;
        VcLease ls;
        int r = vc_lease_acquire(b, name, vc_host_name(), &ls);
        if (r < 0)
                return r;
        memcpy(token, ls.token, VC_LEASE_TOKEN_LEN);
        vc_wipe(&ls, sizeof ls);
        /* not saved: a checkin killed now leaves the lease with this host,
         * and the next one here gets the same token back */
        return 1;
}

/* ---- create --------------------------------------------------------------------------- */

/* The key check of group's secret that a parcel of the group in the
 * store holds; 0 if the store has no parcel of the group. */
static int group_check_of(VcBackend *b, const char *group, uint8_t chk[16])
{
        VcParcelInfo *pi = NULL;
        size_t n = 0;
        int r = vc_cat_parcels(b, &pi, &n), found = 0;
        for (size_t i = 0; r >= 0 && i < n && !found; i++) {
                VcParcel q;
                if (vc_parcel_unpack(pi[i].record, pi[i].record_len, pi[i].name, &q) < 0) {
                        vc_errclear();      /* not ours to judge here */
                        continue;
                }
                if (q.policy == VC_POLICY_GROUP && strcmp(q.group, group) == 0) {
                        memcpy(chk, q.group_check, 16);
                        found = 1;
                }
        }
        free(pi);
        return r < 0 ? r : found;
}

/* A new parcel's key, always new; its group's key, made for the group's
 * first parcel and otherwise loaded and checked against the group's
 * parcels. Sets what it made, for make_keys_undo. */
static int make_keys(VcBackend *b, VcParcel *p, Keys *k, bool *made_parcel, bool *made_group)
{
        const uint8_t *uuid = vc_backend_uuid(b);
        *made_parcel = *made_group = false;
        int r = vc_key_create(uuid, "parcel", p->name, k->parcel);
        if (r < 0)
                return r;
        *made_parcel = true;
        key_check(k->parcel, p->check);
        if (p->policy == VC_POLICY_GROUP) {
                uint8_t chk[16];
                int created;
                if ((r = group_check_of(b, p->group, chk)) < 0 ||
                    (r = vc_key_create_or_load_group(uuid, p->group, r ? chk : NULL, k->group, &created)) < 0)
                        return r;
                *made_group = created;
                key_check(k->group, p->group_check);
        }
        keys_derive(k);
        return 0;
}

/* Removes the keys make_keys made for a parcel that never reached the
 * store, keeping the error and its message. */
static void make_keys_undo(VcBackend *b, const VcParcel *p, const Keys *k, bool made_parcel, bool made_group, int r)
{
        VcErr e = VC_ERR_INIT;
        vc_err_save(&e, r);
        if (made_parcel)
                vc_key_discard(vc_backend_uuid(b), "parcel", p->name, k->parcel);
        if (made_group)
                vc_key_discard(vc_backend_uuid(b), "group", p->group, k->group);
        vc_err_raise(&e);
}

static int new_record(const VcCreateOpts *o, const VcParcel *src, const VcVersion *sv, VcParcel *p)
{
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", o->name);
        p->policy = o->policy;
        p->comp = o->comp;
        snprintf(p->group, sizeof p->group, "%s", o->group);
        p->chunk_size = o->chunk_size ? o->chunk_size : src ? src->chunk_size : 128u << 10;
        p->mem_size = src ? sv->mem_size : o->mem_size;
        p->disk_size = src ? sv->disk_size : o->disk_size;
        p->created = vc_now();
        int r;
        if ((r = vc_image_size_check("memory size", p->mem_size, p->chunk_size)) < 0 ||
            (r = vc_image_size_check("disk size", p->disk_size, p->chunk_size)) < 0)
                return r;
        r = vc_random(p->uuid, sizeof p->uuid);
        if (r < 0)
                return r;
        vc_parcel_domains(p);
        return 0;
}

int vc_parcel_create(VcBackend *b, const VcCreateOpts *o, bool quiet, VcCheckinStats *st)
{
        memset(st, 0, sizeof *st);
        if (!vc_name_valid(o->name))
                return vc_errf(-EINVAL, "invalid parcel name '%s' (use 1-64 letters, digits, '.', '_', '-')", o->name);
        VcParcel p, src;
        VcParcelInfo cur;
        Keys k = { 0 }, sk = { 0 };
        VcVersion sv;
        VcEntry srm, srd, saux[2], *smem = NULL, *sdisk = NULL;
        uint64_t nsm = 0, nsd = 0;
        uint8_t *smach = NULL;
        size_t smlen = 0;
        memset(saux, 0, sizeof saux);
        VcSealer *ssealer = NULL;
        Source mem = { .fd = -1 }, disk = { .fd = -1 };
        uint8_t rec[VC_PARCEL_REC_MAX];
        size_t rlen;
        bool resume = false, made_parcel = false, made_group = false;
        int r = vc_cat_parcel(b, o->name, &cur);
        if (r == 0 && !((o->from || o->machine) && cur.latest == 0))
                return vc_errf(-EEXIST, "parcel '%s' already exists", o->name);
        if (o->machine) {
                /* a VM's disk image: checked before anything is made */
                int dr;
                if (o->disk_image && (dr = source_open_file(o->disk_image, "disk", o->disk_size, &disk)) < 0)
                        return dr;
                sv = (VcVersion){ .mem_size = o->mem_size, .disk_size = o->disk_size };
        }
        if (r < 0 && r != -ENOENT)
                return r;
        resume = r == 0;
        vc_errclear();
        if (o->from) {
                if ((r = parcel_open(b, o->from, &src, &sk)) < 0)
                        goto out;
                if (src.latest == 0) {
                        r = vc_errf(-ENOENT, "parcel '%s' has no version to copy yet", o->from);
                        goto out;
                }
                if ((r = version_open_aux(b, &src, &sk, o->from_version ? o->from_version : src.latest, &sv, &srm,
                                          &srd, saux)) < 0 ||
                    (r = read_aux(b, &src, &sk, &sv, 0, &saux[0], &smach, &smlen)) < 0)
                        goto out;
        }
        if (resume) {
                /* an earlier `parcel create --from` made the parcel but did
                 * not commit its version 1: finish it, if the parcel is
                 * ours (its record authenticates under our key) */
                if ((r = parcel_open(b, o->name, &p, &k)) < 0)
                        goto out;
                if (p.mem_size != sv.mem_size || p.disk_size != sv.disk_size) {
                        r = vc_errf(-EEXIST, "parcel '%s' already exists", o->name);
                        goto out;
                }
        } else {
                if ((r = new_record(o, o->from ? &src : NULL, &sv, &p)) < 0)
                        goto out;
                /* keys first: a parcel in the catalog without its key would be lost */
                if ((r = make_keys(b, &p, &k, &made_parcel, &made_group)) < 0 ||
                    (r = vc_parcel_pack(&p, rec, sizeof rec, &rlen)) < 0)
                        goto undo;
                record_mac(&k, p.name, rec, rlen, p.mac);
                memcpy(rec + rlen - VC_RECORD_MAC_LEN, p.mac, VC_RECORD_MAC_LEN);
                if ((r = vc_cat_create(b, p.name, o->owner, rec, rlen)) < 0) {
                        /* undo only when the record surely is not there:
                         * a server may have made it before the link broke */
                        if (r == -EEXIST || strcmp(vc_backend_kind(b), "local") == 0)
                                goto undo;
                        goto out;
                }
                /* the record is in the store: from now on the keys stay */
                if (!o->from && !o->machine)
                        goto out;
        }
        if (o->machine) {
                /* version 1 of a VM: its machine, no memory yet, its disk */
                mem = (Source){ .size = p.mem_size, .what = "memory", .fd = -1, .zeros = true };
                if (disk.fd < 0)
                        disk = (Source){ .size = p.disk_size, .what = "disk", .fd = -1, .zeros = true };
                VcAuxIn ai = { .machine = o->machine, .machine_len = o->machine_len };
                r = do_checkin(b, &p, &k, &mem, &disk, &ai, NULL, quiet, st);
                goto made;
        }
        /* version 1 is a copy of the gold image */
        if ((r = read_entries(b, &src, &sk, &sv, &srm, &srd, &smem, &nsm, &sdisk, &nsd)) < 0 ||
            (r = sealer_for(&src, &sk, &ssealer)) < 0)
                goto out;
        mem = (Source){ .size = sv.mem_size, .what = "memory", .fd = -1, .b = b, .p = &src, .e = smem, .sealer = ssealer };
        disk = (Source){ .size = sv.disk_size, .what = "disk", .fd = -1, .b = b, .p = &src, .e = sdisk, .sealer = ssealer };
        VcAuxIn sai = { .machine = smach, .machine_len = smlen };
        r = do_checkin(b, &p, &k, &mem, &disk, &sai, NULL, quiet, st);
made:
        if (r < 0) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", vc_errmsg(r));
                vc_errf_replace(r, "%s; parcel '%s' exists without a version: run the same `parcel create` "
                                "again to finish it", msg, o->name);
        }
        goto out;
undo:
        make_keys_undo(b, &p, &k, made_parcel, made_group, r);
out:
        if (disk.fd >= 0)
                close(disk.fd);
        free(smach);
        vc_wipe(saux, sizeof saux);
        vc_wipe(&srm, sizeof srm);
        vc_wipe(&srd, sizeof srd);
        keys_wipe(&k);
        keys_wipe(&sk);
        vc_sealer_free(ssealer);
        free(smem);
        free(sdisk);
        return r < 0 ? r : 0;
}
