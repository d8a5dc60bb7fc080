/*
 * pyport's own exits (see exits.h). The announcement runs at most once: a second
 * thread that fails meanwhile exits at once with its own status.
 */
#include "exits.h"

#include <stdatomic.h>
#include <unistd.h>

static void (*_Atomic g_announce)(int status);
static atomic_int g_exiting;

void exit_set_announce(void (*announce)(int status))
{
    atomic_store(&g_announce, announce);
}

_Noreturn void exit_now(int status)
{
    void (*announce)(int) = atomic_load(&g_announce);
    if (announce != NULL && !atomic_exchange(&g_exiting, 1)) {
        announce(status);
    }
    _exit(status);
}
