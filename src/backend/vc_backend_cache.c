/* Placeholder of the host chunk cache (vc_backend.h: vc_backend_cache_open)
 * until it is written, so that vc_backend_open links: a URL without
 * no_cache gets a clear error instead of a link failure. */
#include "backend/vc_backend.h"
#include "core/vc_util.h"

#include <errno.h>

int vc_backend_cache_open(const char *dir, uint64_t bound, VcBackend *upstream, VcBackend **ret)
{
        vc_backend_free(upstream);
        return vc_errf(-ENOTSUP, "the host chunk cache is not written yet: talk to the server directly (no_cache)");
}
