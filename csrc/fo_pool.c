/*
 * The thread pool: persistent worker threads, started on first need and
 * sized by fo_set_num_threads(). fo_run() cuts one job (all items of a step)
 * into pieces of FO_PIECE_BYTES of parameter bytes, laid end to end in one
 * byte space with each item starting on a 64-byte boundary, and threads take
 * pieces from a shared counter until none is left. The pieces depend only on
 * the item sizes, never on the thread count, so per-piece reductions combined
 * in piece order give the same bits for any number of threads.
 *
 * Idle workers sleep on a condition variable (no spinning), and the caller
 * works too: a worker that the OS has descheduled simply takes no piece, so
 * the job never waits on it. One job uses the pool at a time; a second caller
 * (another Python thread) runs its job on its own thread instead of waiting.
 *
 * When the caller runs out of pieces while a worker still finishes its last
 * one, it spins for at most FO_SPIN_NS before it sleeps: a running worker is
 * done within one piece (tens of microseconds), while a caller that sleeps
 * gives up its core and, on a busy machine, may wait a whole scheduler time
 * slice (milliseconds) to get one back. A worker that was descheduled
 * mid-piece is not worth spinning for, hence the bound.
 */
#if defined(__linux__)
#define _GNU_SOURCE 1 /* sched_getaffinity */
#endif
#include <stdlib.h>
#include <string.h>
#include "fo_common.h"

/* Below this many pieces (1 MiB of parameters, ~50-100 us of work) waking a
 * worker costs more than it saves: at 4 pieces, 10^5-element float32 steps
 * were slower at the median with 2 threads than with 1 (BENCHMARKS.md). */
#define FO_MIN_PARALLEL_PIECES 16
#define FO_MAX_THREADS 1024
/* How long the caller spins for the last worker before sleeping. */
#define FO_SPIN_NS 100000

#if defined(_WIN32)
#include <windows.h>
typedef SRWLOCK fo_mutex;
typedef CONDITION_VARIABLE fo_cond;
typedef HANDLE fo_thread;
#define fo_mutex_init(m) InitializeSRWLock(m)
#define fo_mutex_lock(m) AcquireSRWLockExclusive(m)
#define fo_mutex_trylock(m) (TryAcquireSRWLockExclusive(m) ? 0 : 1)
#define fo_mutex_unlock(m) ReleaseSRWLockExclusive(m)
#define fo_cond_init(c) InitializeConditionVariable(c)
#define fo_cond_wait(c, m) SleepConditionVariableSRW(c, m, INFINITE, 0)
#define fo_cond_broadcast(c) WakeAllConditionVariable(c)
#define fo_cond_signal(c) WakeConditionVariable(c)
#define FO_FETCH_ADD(p, v) ((size_t)InterlockedExchangeAdd64((volatile LONG64 *)(p), (LONG64)(v)))
#define FO_ACTIVE_DEC(p) InterlockedDecrement((volatile LONG *)(p))
#define FO_ACTIVE_LOAD(p) InterlockedCompareExchange((volatile LONG *)(p), 0, 0)
#define FO_PAUSE() YieldProcessor()
static long long fo_now_ns(void)
{
    LARGE_INTEGER t, f;
    QueryPerformanceCounter(&t);
    QueryPerformanceFrequency(&f);
    return (long long)((double)t.QuadPart * 1e9 / (double)f.QuadPart);
}
#define FO_MUTEX_INITIALIZER SRWLOCK_INIT
#define FO_COND_INITIALIZER CONDITION_VARIABLE_INIT
static DWORD WINAPI fo_worker_main(LPVOID arg);
static int fo_thread_start(fo_thread *t, void *arg)
{
    *t = CreateThread(NULL, 0, fo_worker_main, arg, 0, NULL);
    return *t ? 0 : -1;
}
#else
#include <pthread.h>
#include <unistd.h>
#if defined(__linux__)
#include <sched.h>
#endif
typedef pthread_mutex_t fo_mutex;
typedef pthread_cond_t fo_cond;
typedef pthread_t fo_thread;
#define fo_mutex_init(m) pthread_mutex_init(m, NULL)
#define fo_mutex_lock(m) pthread_mutex_lock(m)
#define fo_mutex_trylock(m) pthread_mutex_trylock(m)
#define fo_mutex_unlock(m) pthread_mutex_unlock(m)
#define fo_cond_init(c) pthread_cond_init(c, NULL)
#define fo_cond_wait(c, m) pthread_cond_wait(c, m)
#define fo_cond_broadcast(c) pthread_cond_broadcast(c)
#define fo_cond_signal(c) pthread_cond_signal(c)
#define FO_FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define FO_ACTIVE_DEC(p) __atomic_sub_fetch((p), 1, __ATOMIC_RELEASE)
#define FO_ACTIVE_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#if defined(__x86_64__) || defined(__i386__)
#define FO_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define FO_PAUSE() __asm__ __volatile__("yield")
#else
#define FO_PAUSE() ((void)0)
#endif
#include <time.h>
static long long fo_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
#define FO_MUTEX_INITIALIZER PTHREAD_MUTEX_INITIALIZER
#define FO_COND_INITIALIZER PTHREAD_COND_INITIALIZER
static void *fo_worker_main(void *arg);
static int fo_thread_start(fo_thread *t, void *arg)
{
    return pthread_create(t, NULL, fo_worker_main, arg) == 0 ? 0 : -1;
}
#endif

/* A job's pieces are cut into one contiguous range per thread, each with its
 * own counter on a cache line of its own. A thread takes the pieces of its
 * range in order, then helps with the others' (from where they are), so each
 * thread streams through long stretches of memory, which the hardware
 * prefetchers follow, instead of every other 64 KiB piece. Which thread runs
 * a piece never changes what the piece computes. */
#define FO_MAX_RANGES 64
typedef struct {
    size_t next;           /* next piece of the range to take (atomic) */
    char pad[FO_ALIGN_BYTES - sizeof(size_t)];
} fo_range;

typedef struct fo_job {
    const fo_item *items;
    size_t count;
    size_t pieces;
    size_t total;          /* bytes in the job's byte space */
    double *partials;
    const fo_kernel *as;   /* NULL, or the kernel per dtype to run instead of each item's */
    void (*task)(void *ctx, size_t k); /* non-NULL: piece k is task(ctx, k) (fo_run_tasks) */
    void *ctx;
    size_t ranges;         /* 1 .. FO_MAX_RANGES; range r ends where r + 1 starts */
    char pad0[FO_ALIGN_BYTES];
    fo_range range[FO_MAX_RANGES];
} fo_job;

static struct {
    fo_mutex lock;         /* guards the fields below */
    fo_cond wake, done;
    fo_mutex run_lock;     /* held by the job that owns the workers */
    int nthreads;          /* configured, including the caller; 0 = not set yet */
    int nworkers;          /* worker threads running */
    int stop;              /* workers leave (never set today: workers live as long as the process) */
    unsigned long generation;
    int open;              /* the current job still admits workers */
    int active;            /* workers inside the current job (atomic decrement) */
    fo_job *job;
    fo_thread threads[FO_MAX_THREADS];
} fo_pool = { FO_MUTEX_INITIALIZER, FO_COND_INITIALIZER, FO_COND_INITIALIZER, FO_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, 0, NULL, {0} };

static size_t fo_item_bytes(const fo_item *it) { return fo_room(it); }

size_t fo_plan(fo_item *items, size_t count)
{
    size_t off = 0;
    for (size_t i = 0; i < count; i++) fo_place(&items[i], &off);
    return fo_pieces(off);
}

static size_t fo_job_total(const fo_item *items, size_t count)
{
    return count ? items[count - 1].vstart + fo_item_bytes(&items[count - 1]) : 0;
}

/* Run piece k: every item part inside bytes [k * P, (k + 1) * P). */
static void fo_run_piece(const fo_job *job, size_t k)
{
    size_t a = k * FO_PIECE_BYTES, b = a + FO_PIECE_BYTES;
    if (b > job->total) b = job->total;
    /* first item that ends after a */
    size_t lo = 0, hi = job->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const fo_item *it = &job->items[mid];
        if (it->vstart + fo_item_bytes(it) <= a) lo = mid + 1;
        else hi = mid;
    }
    double *acc = job->partials ? &job->partials[k] : NULL;
    const fo_kernel *as = job->as;
    for (size_t i = lo; i < job->count && job->items[i].vstart < b; i++) {
        const fo_item *it = &job->items[i];
        const unsigned shift = fo_dtype_shift(it->dtype);
        size_t start = it->vstart, stop = start + fo_item_bytes(it);
        size_t from = (a > start ? a : start) - start, to = (b < stop ? b : stop) - start;
        if (to > from) (as ? as[it->dtype] : it->kernel)(it, from >> shift, to >> shift, acc);
    }
}

static size_t fo_range_start(const fo_job *job, size_t r) { return job->pieces * r / job->ranges; }

/* Thread `self` (the caller is 0, worker i is i + 1): its range, then the others'. */
static void fo_work(fo_job *job, size_t self)
{
    for (size_t n = 0; n < job->ranges; n++) {
        const size_t r = (self + n) % job->ranges, end = fo_range_start(job, r + 1);
        for (;;) {
            size_t k = FO_FETCH_ADD(&job->range[r].next, (size_t)1);
            if (k >= end) break;
            if (job->task) job->task(job->ctx, k);
            else fo_run_piece(job, k);
        }
    }
}

#if defined(_WIN32)
static DWORD WINAPI fo_worker_main(LPVOID arg)
#else
static void *fo_worker_main(void *arg)
#endif
{
    const int index = (int)(size_t)arg;  /* workers 0 .. nthreads - 2 take part */
    /* Workers keep the ordinary scheduling class. As batch threads (which
     * never preempt the running thread when woken) they waited for a whole
     * time slice of whatever held the other core: torch's OpenMP threads,
     * which spin after each op, or another process (BENCHMARKS.md, "The
     * pool's workers: ordinary threads, not batch threads"). */
    fo_mutex_lock(&fo_pool.lock);
    unsigned long seen = fo_pool.generation;
    for (;;) {
        while (fo_pool.generation == seen && !fo_pool.stop) fo_cond_wait(&fo_pool.wake, &fo_pool.lock);
        if (fo_pool.stop) break;
        seen = fo_pool.generation;
        /* nthreads does not change while a job is open (fo_run holds run_lock) */
        if (!fo_pool.open || index >= fo_pool.nthreads - 1) continue;
        fo_job *job = fo_pool.job;
        fo_pool.active++;
        fo_mutex_unlock(&fo_pool.lock);
        fo_work(job, (size_t)index + 1);
        fo_mutex_lock(&fo_pool.lock);
        if (FO_ACTIVE_DEC(&fo_pool.active) == 0) {
            /* Signal with the lock released: the caller wakes up wanting the
             * lock, and must not find it held by a worker it just preempted. */
            fo_mutex_unlock(&fo_pool.lock);
            fo_cond_signal(&fo_pool.done);
            fo_mutex_lock(&fo_pool.lock);
        }
    }
    fo_mutex_unlock(&fo_pool.lock);
    return 0;
}

int fo_default_num_threads(void)
{
    long n = 1;
#if defined(_WIN32)
    n = (long)GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
#elif defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    else n = sysconf(_SC_NPROCESSORS_ONLN);
#else
    n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    if (n < 1) n = 1;
    if (n > FO_MAX_THREADS) n = FO_MAX_THREADS;
    return (int)n;
}

/* Fewer threads than workers: the extra workers stay asleep through jobs
 * (they wake, see their index is out of range and sleep again), so going
 * back and forth between thread counts never starts or joins a thread. */
int fo_set_num_threads(int n)
{
    if (n < 1 || n > FO_MAX_THREADS) return -1;
    fo_mutex_lock(&fo_pool.run_lock);
    fo_pool.nthreads = n;
    fo_mutex_unlock(&fo_pool.run_lock);
    return 0;
}

int fo_get_num_threads(void)
{
    int n = fo_pool.nthreads;
    return n ? n : fo_default_num_threads();
}

/* Start workers up to nthreads - 1. Caller holds run_lock. */
static void fo_start_workers(void)
{
    if (!fo_pool.nthreads) fo_pool.nthreads = fo_default_num_threads();
    while (fo_pool.nworkers < fo_pool.nthreads - 1) {
        if (fo_thread_start(&fo_pool.threads[fo_pool.nworkers], (void *)(size_t)fo_pool.nworkers) != 0)
            break;
        fo_pool.nworkers++;
    }
}

void fo_run(const fo_item *items, size_t count, size_t pieces, double *partials)
{
    fo_run_as(items, count, pieces, partials, NULL);
}

/* Cut the job's pieces into `threads` ranges (at most FO_MAX_RANGES). */
static void fo_split(fo_job *job, size_t threads)
{
    job->ranges = threads < FO_MAX_RANGES ? threads : FO_MAX_RANGES;
    for (size_t r = 0; r < job->ranges; r++) job->range[r].next = fo_range_start(job, r);
}

/* Run a job's pieces on the pool (or on the caller alone when `parallel` is 0). */
static void fo_run_job(fo_job *job, int parallel)
{
    if (!parallel || fo_get_num_threads() == 1 || fo_mutex_trylock(&fo_pool.run_lock) != 0) {
        fo_split(job, 1);
        fo_work(job, 0);
        return;
    }
    fo_start_workers();
    /* the workers that take part (fo_worker_main): index < nthreads - 1 */
    const int helpers = fo_pool.nworkers < fo_pool.nthreads - 1 ? fo_pool.nworkers : fo_pool.nthreads - 1;
    fo_split(job, (size_t)helpers + 1);
    if (fo_pool.nworkers > 0) {
        fo_mutex_lock(&fo_pool.lock);
        fo_pool.job = job;
        fo_pool.open = 1;
        fo_pool.generation++;
        fo_cond_broadcast(&fo_pool.wake);
        fo_mutex_unlock(&fo_pool.lock);
    }
    fo_work(job, 0);
    if (fo_pool.nworkers > 0) {
        fo_mutex_lock(&fo_pool.lock);
        fo_pool.open = 0;  /* no worker enters from now on */
        int busy = fo_pool.active > 0;
        fo_mutex_unlock(&fo_pool.lock);
        if (busy) {
            long long deadline = fo_now_ns() + FO_SPIN_NS;
            for (unsigned k = 1; FO_ACTIVE_LOAD(&fo_pool.active) > 0; k++) {
                FO_PAUSE();
                if (k % 64 == 0 && fo_now_ns() > deadline) break;
            }
        }
        fo_mutex_lock(&fo_pool.lock);
        while (fo_pool.active > 0) fo_cond_wait(&fo_pool.done, &fo_pool.lock);
        fo_pool.job = NULL;
        fo_mutex_unlock(&fo_pool.lock);
    }
    fo_mutex_unlock(&fo_pool.run_lock);
}

void fo_run_as(const fo_item *items, size_t count, size_t pieces, double *partials,
               const fo_kernel *as)
{
    fo_job job;  /* its ranges are set by fo_run_job */
    job.items = items;
    job.count = count;
    job.pieces = pieces;
    job.total = fo_job_total(items, count);
    job.partials = partials;
    job.as = as;
    job.task = NULL;
    job.ctx = NULL;
    if (partials) memset(partials, 0, pieces * sizeof *partials);
    fo_run_job(&job, pieces >= FO_MIN_PARALLEL_PIECES);
}

void fo_run_tasks(size_t count, void (*task)(void *ctx, size_t k), void *ctx, size_t bytes)
{
    fo_job job;  /* its ranges are set by fo_run_job */
    job.items = NULL;
    job.count = 0;
    job.pieces = count;
    job.total = 0;
    job.partials = NULL;
    job.as = NULL;
    job.task = task;
    job.ctx = ctx;
    fo_run_job(&job, count > 1 && fo_pieces(bytes) >= FO_MIN_PARALLEL_PIECES);
}

#if !defined(_WIN32)
/* A forked child has none of the parent's threads: forget them. */
static void fo_after_fork_child(void)
{
    fo_mutex_init(&fo_pool.lock);
    fo_mutex_init(&fo_pool.run_lock);
    fo_cond_init(&fo_pool.wake);
    fo_cond_init(&fo_pool.done);
    fo_pool.nworkers = 0;
    fo_pool.stop = 0;
    fo_pool.open = 0;
    fo_pool.active = 0;
    fo_pool.job = NULL;
}

#if defined(__GNUC__)
__attribute__((constructor))
#endif
static void fo_pool_register_fork(void)
{
    pthread_atfork(NULL, NULL, fo_after_fork_child);
}
#endif
