/* coord_dash_evloop: libev loop for the lws context, opened at run time (see the header). */
#include "coord_dash_evloop.h"

#include <dlfcn.h>

#include "co_alloc.h"
#include "co_log.h"

/* The three libev entry points used, with libev 4's ABI (ev.h: EVBACKEND_EPOLL, EVRUN_*). */
#define EV_BACKEND_EPOLL 0x00000004U
#define EV_RUN_NOWAIT 1
#define EV_RUN_ONCE 2

typedef void *(*ev_loop_new_fn)(unsigned int flags);
typedef int (*ev_run_fn)(void *loop, int flags);
typedef void (*ev_loop_destroy_fn)(void *loop);

struct coord_dash_evloop {
    void *lib;
    void *loop;
    void *foreign[1];
    ev_run_fn run;
    ev_loop_destroy_fn destroy;
};

struct coord_dash_evloop *
coord_dash_evloop_new(void)
{
    void *lib = dlopen("libev.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        co_info("event loop: libev not available, using lws's poll loop error=\"%s\"", dlerror());
        return NULL;
    }
    ev_loop_new_fn loop_new;
    ev_run_fn run;
    ev_loop_destroy_fn destroy;
    /* dlsym returns object pointers; the casts through void * are the POSIX idiom. */
    *(void **)&loop_new = dlsym(lib, "ev_loop_new");
    *(void **)&run = dlsym(lib, "ev_run");
    *(void **)&destroy = dlsym(lib, "ev_loop_destroy");
    void *loop = loop_new && run && destroy ? loop_new(EV_BACKEND_EPOLL) : NULL;
    if (!loop) {
        co_info("event loop: libev has no epoll loop here, using lws's poll loop");
        dlclose(lib);
        return NULL;
    }
    struct coord_dash_evloop *l = co_xcalloc(1, sizeof(*l));
    l->lib = lib;
    l->loop = loop;
    l->foreign[0] = loop;
    l->run = run;
    l->destroy = destroy;
    co_info("event loop: libev (epoll)");
    return l;
}

void **
coord_dash_evloop_foreign(struct coord_dash_evloop *l)
{
    return l->foreign;
}

void
coord_dash_evloop_run(struct coord_dash_evloop *l, bool nowait)
{
    l->run(l->loop, nowait ? EV_RUN_NOWAIT : EV_RUN_ONCE);
}

void
coord_dash_evloop_free(struct coord_dash_evloop *l)
{
    if (!l)
        return;
    l->destroy(l->loop);
    dlclose(l->lib);
    free(l);
}
