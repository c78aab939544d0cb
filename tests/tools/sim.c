/*
 * sim.c (tool): run the Raft simulator over many seeds, or replay one.
 *
 *   sim --seeds N [--base B] [--seconds S]   N seeds from B (default 1)
 *   sim --seed S [--trace 1|2]               replay one seed, with a trace
 *   --real-disk: every node's disk is the log store in a temporary
 *   directory (tests/sim/disk_real.c) instead of the in-memory one
 *
 * Prints one summary line, or for a failing seed the violation and the one
 * command that replays it. Exit status 1 if any seed failed.
 */
#include "../sim/sim.c"

#include <signal.h>
#include <time.h>

static void add_stats(sim_stats *a, const sim_stats *b)
{
    uint64_t max =
        a->recovery_ms_max > b->recovery_ms_max ? a->recovery_ms_max : b->recovery_ms_max;
    const uint64_t *pb = (const uint64_t *)b;
    uint64_t *pa = (uint64_t *)a;
    for (size_t i = 0; i < sizeof *a / sizeof(uint64_t); i++)
        pa[i] += pb[i];
    a->recovery_ms_max = max;
}

static bool real_disk;

static bool run_seed(uint64_t seed, int trace, sim_stats *tot)
{
    sim_cfg cfg;
    sim_random_cfg(&cfg, seed);
    if (real_disk)
        sim_use_real_disk(&cfg, seed);
    sim *s = malloc(sizeof *s);
    if (!s)
        abort();
    sim_init(s, seed, &cfg, trace);
    if (trace)
        printf("seed %" PRIu64 ": %d nodes, %d groups, election %u ms, heartbeat %u ms, drop %.2f, "
               "dup %.2f, corrupt %.2f, delay %u-%u ms, %d clients\n",
               seed, cfg.n, cfg.n_groups, cfg.election_ms, cfg.heartbeat_ms, cfg.drop, cfg.dup,
               cfg.corrupt, cfg.delay_min, cfg.delay_max, cfg.n_clients);
    bool ok = sim_run(s);
    if (!ok)
        printf("FAIL sim seed %" PRIu64 "%s: %s\n  replay: make sim SEED=%" PRIu64 "%s TRACE=1\n",
               seed, real_disk ? " (real disk)" : "", s->why, seed,
               real_disk ? " REAL_DISK=1" : "");
    add_stats(tot, &s->st);
    sim_free(s);
    free(s);
    return ok;
}

int main(int argc, char **argv)
{
    uint64_t seeds = 0, base = 1, one = 0;
    int trace = 0;
    bool have_one = false;
    double budget_s = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seeds") && i + 1 < argc)
            seeds = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--base") && i + 1 < argc)
            base = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            one = strtoull(argv[++i], NULL, 10);
            have_one = true;
        } else if (!strcmp(argv[i], "--trace") && i + 1 < argc)
            trace = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            budget_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--real-disk"))
            real_disk = true;
        else {
            fprintf(stderr,
                    "usage: sim [--real-disk] --seeds N [--base B] [--seconds S] | --seed S "
                    "[--trace 1|2]\n");
            return 64;
        }
    }
    if (real_disk) /* a trace piped into head must not leave the run's directories behind */
        signal(SIGPIPE, SIG_IGN);
    sim_stats tot = {0};
    uint64_t failed = 0, ran = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (have_one) {
        failed = !run_seed(one, trace, &tot);
        ran = 1;
    } else {
        if (!seeds && !budget_s)
            seeds = 1000;
        for (uint64_t k = 0; !seeds || k < seeds; k++) {
            if (budget_s) {
                clock_gettime(CLOCK_MONOTONIC, &t1);
                if ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 >
                    budget_s)
                    break;
            }
            failed += !run_seed(base + k, 0, &tot);
            ran++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("sim: %" PRIu64 " seeds from %" PRIu64 ", %" PRIu64
           " failed, %.2f simulated hours in %.1f s; "
           "messages %" PRIu64 " (dropped %" PRIu64 ", duplicated %" PRIu64 ", corrupted %" PRIu64
           ", rejected by decoder %" PRIu64 ", cut by partitions %" PRIu64
           ", replayed late %" PRIu64 "); crashes %" PRIu64 " (torn %" PRIu64 "), pauses %" PRIu64
           ", disk stalls %" PRIu64 ", partitions %" PRIu64 ", one-way %" PRIu64
           ", non-transitive %" PRIu64 ", flapping %" PRIu64 ", heals %" PRIu64
           ", disk write errors %" PRIu64 " (fail-stops %" PRIu64 ")"
           "; leaders elected %" PRIu64 ", appends acknowledged %" PRIu64
           " (too old to tell %" PRIu64 "), conflicts %" PRIu64 ", reads %" PRIu64
           ", committed entries %" PRIu64 ", truncations %" PRIu64 ", syncs deferred by spares %" PRIu64
           "; after faults stop, first new commit in %.0f ms on average, %" PRIu64 " ms at most\n",
           ran, have_one ? one : base, failed, (double)tot.sim_ms / 3.6e6, secs, tot.msgs,
           tot.dropped, tot.duplicated, tot.corrupted, tot.rejected, tot.cut, tot.stale,
           tot.crashes, tot.torn, tot.pauses, tot.stalls, tot.partitions, tot.oneway,
           tot.nontransitive, tot.flaps, tot.heals, tot.disk_errors, tot.fail_stops, tot.elections,
           tot.acks, tot.too_old, tot.conflicts, tot.reads, tot.commits_end, tot.truncations,
           tot.spare_syncs,
           tot.recoveries ? (double)tot.recovery_ms_sum / (double)tot.recoveries : 0.0,
           tot.recovery_ms_max);
    if (tot.real_seeds)
        printf("sim: real disk (log store) on %" PRIu64 " seeds: %" PRIu64 " opens and recoveries, "
               "unsynced entries kept whole %" PRIu64 " times, partly (a batch over a segment roll) %" PRIu64 " times\n",
               tot.real_seeds, tot.real_opens, tot.real_kept, tot.real_partial);
    return failed ? 1 : 0;
}
