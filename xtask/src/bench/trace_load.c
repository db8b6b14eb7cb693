/*
 * Workloads of `cargo xtask bench --trace`, built by the benchmark with
 * `cc -O2`. Each mode runs one loop and prints one line on stdout,
 * "WALL_NS CPU_NS": the loop's wall time (CLOCK_MONOTONIC) and the user plus
 * system CPU time of this process and its reaped children, in nanoseconds
 * (counted by the kernel in microseconds):
 *
 *   trace_load forkexec N          fork, execve /bin/true and waitpid, N times
 *   trace_load getppid N           N getppid system calls
 *   trace_load storm N THREADS     N children that each unshare(CLONE_NEWUTS)
 *                                  and exit, forked from THREADS threads
 *   trace_load vstorm N THREADS    the same with vfork, which skips copying
 *                                  the page tables and so creates namespaces
 *                                  several times as fast
 *
 * Storm children are forked by threads of this process, so their parent
 * process (getppid) is this process's PID whichever thread forked them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits for one child and returns 0 if it exited with status 0. */
static int reap(pid_t child)
{
	int status;

	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("trace_load: waitpid failed");
			return -1;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "trace_load: child %d failed (wait status %d)\n", child, status);
		return -1;
	}
	return 0;
}

static int fork_exec(long count)
{
	char *const argv[] = { "/bin/true", NULL };
	char *const envp[] = { NULL };

	for (long i = 0; i < count; i++) {
		pid_t child = fork();

		if (child < 0) {
			perror("trace_load: fork failed");
			return -1;
		}
		if (child == 0) {
			execve(argv[0], argv, envp);
			_exit(127);
		}
		if (reap(child) != 0)
			return -1;
	}
	return 0;
}

static void null_syscalls(long count)
{
	/* syscall() rather than getppid(), so that no libc can return a cached value. */
	for (long i = 0; i < count; i++)
		syscall(SYS_getppid);
}

struct storm_worker {
	pthread_t thread;
	long count;
	int use_vfork;
	int failed;
};

/*
 * Starts one child that unshares a uts namespace and exits, and returns its
 * PID (or -1). A vfork child borrows the caller's memory and stack until it
 * exits, so it makes only system calls and _exit (unshare's errno on failure
 * is the one write) and never returns from this function.
 */
static pid_t start_storm_child(int use_vfork)
{
	pid_t child = use_vfork ? vfork() : fork();

	/* Only async-signal-safe calls in the child of a threaded process. */
	if (child == 0)
		_exit(unshare(CLONE_NEWUTS) == 0 ? 0 : 1);
	return child;
}

static void *storm_thread(void *arg)
{
	struct storm_worker *worker = arg;

	for (long i = 0; i < worker->count; i++) {
		pid_t child = start_storm_child(worker->use_vfork);

		if (child < 0) {
			perror("trace_load: fork failed");
			worker->failed = 1;
			return NULL;
		}
		if (reap(child) != 0) {
			worker->failed = 1;
			return NULL;
		}
	}
	return NULL;
}

static int storm(long count, long threads, int use_vfork)
{
	struct storm_worker *workers = calloc(threads, sizeof(*workers));
	int failed = 0;
	long started = 0;

	if (workers == NULL) {
		perror("trace_load: calloc failed");
		return -1;
	}
	for (long i = 0; i < threads; i++) {
		/* The first count % threads workers take one child more. */
		workers[i].count = count / threads + (i < count % threads ? 1 : 0);
		workers[i].use_vfork = use_vfork;
		int err = pthread_create(&workers[i].thread, NULL, storm_thread, &workers[i]);

		if (err != 0) {
			fprintf(stderr, "trace_load: pthread_create failed: %s\n", strerror(err));
			failed = 1;
			break;
		}
		started++;
	}
	for (long i = 0; i < started; i++) {
		pthread_join(workers[i].thread, NULL);
		failed |= workers[i].failed;
	}
	free(workers);
	return failed ? -1 : 0;
}

static long long timeval_ns(struct timeval tv)
{
	return (long long)tv.tv_sec * 1000000000LL + (long long)tv.tv_usec * 1000LL;
}

/* Returns the user plus system CPU time of this process and its reaped children. */
static long long cpu_ns(void)
{
	struct rusage self, children;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &children);
	return timeval_ns(self.ru_utime) + timeval_ns(self.ru_stime)
	       + timeval_ns(children.ru_utime) + timeval_ns(children.ru_stime);
}

static long parse_count(const char *text)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || *end != '\0' || value < 1) {
		fprintf(stderr, "trace_load: invalid count \"%s\": expected a positive integer\n", text);
		exit(2);
	}
	return value;
}

int main(int argc, char **argv)
{
	long long start, cpu_start = cpu_ns();
	int result;

	if (argc == 3 && strcmp(argv[1], "forkexec") == 0) {
		long count = parse_count(argv[2]);

		start = now_ns();
		result = fork_exec(count);
	} else if (argc == 3 && strcmp(argv[1], "getppid") == 0) {
		long count = parse_count(argv[2]);

		start = now_ns();
		null_syscalls(count);
		result = 0;
	} else if (argc == 4 && (strcmp(argv[1], "storm") == 0 || strcmp(argv[1], "vstorm") == 0)) {
		long count = parse_count(argv[2]);
		long threads = parse_count(argv[3]);

		start = now_ns();
		result = storm(count, threads, argv[1][0] == 'v');
	} else {
		fprintf(stderr, "usage: trace_load forkexec N | getppid N | storm N THREADS | vstorm N THREADS\n");
		return 2;
	}
	if (result != 0)
		return 1;
	long long wall = now_ns() - start;

	printf("%lld %lld\n", wall, cpu_ns() - cpu_start);
	return 0;
}
