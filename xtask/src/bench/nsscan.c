/*
 * Baseline for `cargo xtask bench`: a minimal scanner of every task's
 * namespaces in /proc. It reads the ten namespace links of every
 * thread of every process with readlink(2), keeps nothing, and prints only
 * the totals. Built by the benchmark with `cc -O2`.
 */
#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

static const char *const NS_LINKS[] = {
	"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children",
	"time", "time_for_children", "user", "uts",
};

static int is_number(const char *name)
{
	if (*name == '\0')
		return 0;
	for (; *name != '\0'; name++)
		if (*name < '0' || *name > '9')
			return 0;
	return 1;
}

int main(void)
{
	/* Room for two directory names of up to 255 bytes and the fixed parts. */
	char path[2 * 256 + 64];
	char target[64];
	unsigned long tasks = 0, links = 0;
	struct dirent *process, *task;
	DIR *proc, *task_dir;

	proc = opendir("/proc");
	if (proc == NULL) {
		perror("nsscan: failed to open /proc");
		return 1;
	}
	while ((process = readdir(proc)) != NULL) {
		if (!is_number(process->d_name))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/task", process->d_name);
		task_dir = opendir(path);
		if (task_dir == NULL)
			continue; /* The process exited since readdir listed it. */
		while ((task = readdir(task_dir)) != NULL) {
			if (!is_number(task->d_name))
				continue;
			tasks++;
			for (size_t i = 0; i < sizeof(NS_LINKS) / sizeof(NS_LINKS[0]); i++) {
				snprintf(path, sizeof(path), "/proc/%s/task/%s/ns/%s",
					 process->d_name, task->d_name, NS_LINKS[i]);
				if (readlink(path, target, sizeof(target)) > 0)
					links++;
			}
		}
		closedir(task_dir);
	}
	closedir(proc);
	printf("%lu tasks, %lu namespace links\n", tasks, links);
	return 0;
}
