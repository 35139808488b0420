/* fault — see fault.h. */
#include "common/fault.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const site_names[FAULT_NSITES] = {
    "offload_read", "offload_write", "store_write", "file_write", "interrupt", "terminate", "noise"};
static long long fail_at[FAULT_NSITES]; /* 0: never */
static atomic_llong calls[FAULT_NSITES];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void parse(void)
{
    const char *spec = getenv("LLMSIM_FAULT");
    for (const char *p = spec; p && *p;) {
        const char *colon = strchr(p, ':');
        if (!colon)
            break;
        for (int s = 0; s < FAULT_NSITES; s++)
            if (strlen(site_names[s]) == (size_t)(colon - p) &&
                strncmp(p, site_names[s], (size_t)(colon - p)) == 0)
                fail_at[s] = strtoll(colon + 1, NULL, 10);
        const char *comma = strchr(colon, ',');
        p = comma ? comma + 1 : NULL;
    }
}

bool fault_armed(fault_site s)
{
    pthread_once(&once, parse);
    return fail_at[s] > 0;
}

bool fault_now(fault_site s)
{
    if (!fault_armed(s))
        return false;
    return atomic_fetch_add(&calls[s], 1) + 1 == fail_at[s];
}

void fault_signal_point(void)
{
    if (fault_now(FAULT_INTERRUPT))
        raise(SIGINT);
    if (fault_now(FAULT_TERMINATE))
        raise(SIGTERM);
}

double fault_stretch(double secs)
{
    if (!fault_armed(FAULT_NOISE))
        return secs;
    return (atomic_fetch_add(&calls[FAULT_NOISE], 1) + 1) % fail_at[FAULT_NOISE] == 0 ? 2 * secs : secs;
}
