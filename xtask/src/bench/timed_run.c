/*
 * Timing harness of `cargo xtask bench`: runs PROGRAM [ARGS...] with standard
 * input, output and error on /dev/null, waits for it with wait4(2), and prints
 * one line: "WALL_NS MAXRSS_KIB WAIT_STATUS CPU_US", where CPU_US is user plus
 * system CPU time in microseconds.
 *
 * It exists because ru_maxrss survives execve(2): a child that xtask spawns
 * (with vfork or fork) reports at least xtask's own RSS. This small program
 * forks, so the tool's figure starts from the few pages it has itself.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>

int main(int argc, char **argv)
{
	struct timespec start, end;
	struct rusage usage;
	int status;
	pid_t child;

	if (argc < 2) {
		fprintf(stderr, "usage: timed_run PROGRAM [ARGS...]\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	child = fork();
	if (child < 0) {
		perror("timed_run: fork failed");
		return 1;
	}
	if (child == 0) {
		int null = open("/dev/null", O_RDWR);

		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(126);
		execv(argv[1], argv + 1);
		_exit(127);
	}
	while (wait4(child, &status, 0, &usage) < 0) {
		if (errno != EINTR) {
			perror("timed_run: wait4 failed");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &end);

	long long wall_ns = (long long)(end.tv_sec - start.tv_sec) * 1000000000LL
			    + (end.tv_nsec - start.tv_nsec);
	long long cpu_us = (long long)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000LL
			   + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
	printf("%lld %ld %d %lld\n", wall_ns, usage.ru_maxrss, status, cpu_us);
	return 0;
}
