/*
 * test_conditions — the conditions of a measured run (exec/conditions.h):
 *
 *  - /proc/stat's aggregate cpu line: busy = user + nice + system + irq +
 *    softirq + steal (not idle, iowait, nor guest, already in user); an old
 *    kernel's four fields; no cpu line;
 *  - /proc/loadavg: the 1-minute load and the runnable tasks; malformed text;
 *  - /proc/cpuinfo's "cpu MHz": the mean over the CPUs; none is NaN;
 *  - the judgement over given numbers: a quiet run, others over 10% of the
 *    machine, the counters' resolution on a short run, the probe's change
 *    either way on one thread (10%) and every thread (20%), NaN figures
 *    (unknown: not disturbed), the severity ordering that picks the least
 *    disturbed run;
 *  - the figures by metric name: a round trip, unique names, an unknown name;
 *  - on this machine: the probe's rates and a bracket around a pause are
 *    finite and sane (what is not deterministic is not asserted further).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "exec/conditions.h"
#include "tap.h"

static void test_parse(void)
{
    double busy = 0, steal = 0;
    const char *stat = "cpu  100 20 30 1000 50 7 3 5 40 0\n"
                       "cpu0 50 10 15 500 25 3 1 2 20 0\n"
                       "intr 12345\n";
    CHECK(cond_parse_stat(stat, &busy, &steal), "a /proc/stat is parsed");
    CHECK(busy == 100 + 20 + 30 + 7 + 3 + 5, "busy is user+nice+system+irq+softirq+steal (%g)",
          busy);
    CHECK(steal == 5, "steal is the 8th field (%g)", steal);
    CHECK(cond_parse_stat("intr 1\ncpu  1 2 3 4\n", &busy, &steal) && busy == 6 && steal == 0,
          "an old kernel's four fields, the cpu line not first: busy %g, steal %g", busy, steal);
    CHECK(!cond_parse_stat("cpu0 1 2 3 4\nintr 5\n", &busy, &steal),
          "no aggregate cpu line: false");
    CHECK(!cond_parse_stat("cpu  x\n", &busy, &steal), "a malformed cpu line: false");

    double load = 0, run = 0;
    CHECK(cond_parse_loadavg("0.52 0.58 0.59 3/467 12345\n", &load, &run) && load == 0.52 &&
              run == 3,
          "loadavg: load %g, runnable %g", load, run);
    CHECK(!cond_parse_loadavg("0.52 0.58\n", &load, &run), "a short loadavg: false");

    const char *info = "processor\t: 0\ncpu MHz\t\t: 2000.000\nflags\t: fpu\n\n"
                       "processor\t: 1\ncpu MHz\t\t: 3000.500\n";
    CHECK(fabs(cond_parse_cpuinfo_mhz(info) - 2500.25) < 1e-9, "cpuinfo: the mean clock (%g)",
          cond_parse_cpuinfo_mhz(info));
    CHECK(isnan(cond_parse_cpuinfo_mhz("processor\t: 0\nBogoMIPS\t: 50\n")),
          "cpuinfo without cpu MHz (an ARM machine): NaN, not invented");
}

/* Conditions of a run of wall_s on `cores` with others' CPU time and a
 * probe ratio; the rest unknown. */
static exec_conditions made(double wall_s, double cores, double others, double probe_ratio)
{
    exec_conditions c;
    cond_clear(&c);
    c.measured = true;
    c.wall_s = wall_s;
    c.cores = cores;
    c.threads = cores;
    c.others_cpu_s = others;
    c.steal_s = 0;
    c.tick_s = 0.01;
    c.probe_ratio = probe_ratio;
    return c;
}

static void test_judge(void)
{
    char why[512];
    exec_conditions c = made(1.0, 2, 0.05, 1.03);
    CHECK(!cond_judge(&c, why, sizeof why) && why[0] == '\0',
          "quiet: others 2.5%%, probe +3%%: not "
          "disturbed (%s)",
          why);
    CHECK(cond_severity(&c) < 1, "quiet: severity below 1 (%g)", cond_severity(&c));

    c = made(1.0, 2, 0.6, 1.0);
    CHECK(cond_judge(&c, why, sizeof why), "others took 30%% of 2 cores: disturbed");
    CHECK(strstr(why, "0.60 CPU-s") && strstr(why, "30%") && strstr(why, "limit 10%"),
          "the reason gives the figures and the limit: %s", why);
    CHECK(fabs(cond_others_share(&c) - 0.3) < 1e-12, "the share is others / (wall x cores)");

    /* 2 cores x 2 ticks = 0.04 CPU-s cannot be told from nothing */
    c = made(0.1, 2, 0.04, 1.0);
    CHECK(!cond_judge(&c, NULL, 0), "a 0.1 s run with 0.04 CPU-s of others (the counters' "
                                    "resolution): not disturbed");
    c = made(0.1, 2, 0.09, 1.0);
    CHECK(cond_judge(&c, NULL, 0), "a 0.1 s run with 0.09 CPU-s of others: disturbed");

    c = made(1.0, 2, 0.0, 0.85);
    CHECK(cond_judge(&c, why, sizeof why) && strstr(why, "15% slower"), "probe 15%% slower: %s",
          why);
    c = made(1.0, 2, 0.0, 1.2);
    CHECK(cond_judge(&c, why, sizeof why) && strstr(why, "20% faster"),
          "probe 20%% faster (the load "
          "left during the run): %s",
          why);
    c = made(1.0, 2, 0.0, 1.08);
    CHECK(!cond_judge(&c, NULL, 0), "probe +8%%: within the limit");
    c = made(1.0, 2, 0.0, 1.0);
    c.probe_all_ratio = 1.15;
    CHECK(!cond_judge(&c, NULL, 0), "probe on every thread +15%%: within its limit of 20%%");
    c.probe_all_ratio = 0.75;
    CHECK(cond_judge(&c, why, sizeof why) && strstr(why, "on every thread ran 25% slower") &&
              strstr(why, "limit 20%"),
          "probe on every thread -25%%: %s", why);
    CHECK(cond_severity(&c) > 1.2 && cond_severity(&c) < 1.3, "its severity is 25/20 (%g)",
          cond_severity(&c));

    c = made(1.0, 2, 0.6, 1.0);
    c.steal_s = 0.5;
    CHECK(cond_judge(&c, why, sizeof why) && strstr(why, "stolen by the hypervisor"),
          "mostly steal: said so (%s)", why);

    c = made(1.0, 2, NAN, NAN);
    CHECK(!cond_judge(&c, NULL, 0) && isnan(cond_severity(&c)),
          "nothing readable: not disturbed, severity NaN");

    exec_conditions a = made(1.0, 2, 0.5, 1.0), b = made(1.0, 2, 1.2, 1.0),
                    d = made(1.0, 2, 0.3, 1.5);
    CHECK(cond_severity(&a) < cond_severity(&b), "more of others is more disturbed");
    CHECK(cond_severity(&d) > cond_severity(&a), "a probe 50%% off is worse than others at 25%%");
}

static void test_fields(void)
{
    CHECK(cond_field_count() <= COND_MAX_FIELDS, "at most COND_MAX_FIELDS figures");
    exec_conditions c, back;
    cond_clear(&c);
    cond_clear(&back);
    for (int i = 0; i < cond_field_count(); i++) {
        double v;
        const char *key = cond_field_get(&c, i, &v);
        CHECK(isnan(v), "%s is NaN when not read", key);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(key, cond_field_get(&c, j, &v)) != 0, "%s named once", key);
        CHECK(cond_field_set(&c, key, 1.5 + i), "%s can be set", key);
    }
    for (int i = 0; i < cond_field_count(); i++) {
        double v;
        const char *key = cond_field_get(&c, i, &v);
        cond_field_set(&back, key, v);
    }
    for (int i = 0; i < cond_field_count(); i++) {
        double v, w;
        const char *key = cond_field_get(&c, i, &v);
        cond_field_get(&back, i, &w);
        CHECK(v == 1.5 + i && w == v, "%s round trip (%g, %g)", key, v, w);
    }
    CHECK(!cond_field_set(&c, "no_such_figure", 1), "an unknown name: false");
    CHECK(cond_field_set(&c, "others_cpu_s", 0.25) && c.others_cpu_s == 0.25,
          "others_cpu_s sets others_cpu_s");
}

static void test_here(void)
{
    double rate[2];
    cond_probe_run(2, rate);
    CHECK(isfinite(rate[0]) && rate[0] > 1e8 && isfinite(rate[1]) && rate[1] > 1e8,
          "the probe moves over 100 MB/s on one and two threads (%.3g, %.3g)", rate[0], rate[1]);
    exec_conditions c;
    cond_begin(&c, 1);
    nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    cond_end(&c, false);
    CHECK(c.measured && c.wall_s >= 0.05 && c.wall_s < 5, "the bracket's wall time (%g s)",
          c.wall_s);
    CHECK(c.cores >= 1 && c.threads == 1, "cores %g, threads %g", c.cores, c.threads);
    CHECK(c.cpu_s >= 0 && c.cpu_s < 0.05, "asleep, this process used little CPU (%g s)", c.cpu_s);
    CHECK(isnan(c.others_cpu_s) || c.others_cpu_s >= 0, "others' CPU time is not negative");
    CHECK(isfinite(c.probe_ratio) && c.probe_ratio > 0 && isfinite(c.probe_all_ratio),
          "probe ratios (%g, %g)", c.probe_ratio, c.probe_all_ratio);
    CHECK(c.disturbed == 0 || c.disturbed == 1, "judged");
    char line[512];
    cond_summary(&c, line, sizeof line);
    CHECK(strstr(line, "engine CPU") != NULL, "the summary: %s", line);
    exec_conditions s;
    cond_begin(&s, 1);
    cond_end(&s, true);
    CHECK(isnan(s.probe_ratio) && isnan(s.probe_after[0]), "skip_probe: no probe after, no ratio");
}

int main(void)
{
    test_parse();
    test_judge();
    test_fields();
    test_here();
    return tap_done();
}
