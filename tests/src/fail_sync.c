/* A disk whose sync fails, for tests (see fail_sync.rs): preloaded into a process, makes
 * fsync and fdatasync return EIO for files whose path ends with $LIENTHONG_FAIL_SYNC_SUFFIX
 * while the file $LIENTHONG_FAIL_SYNC_TRIGGER exists: every such sync when the file is empty,
 * else as many as the number it holds (counted down, the file removed at 0). Appends the path
 * of each sync it failed to $LIENTHONG_FAIL_SYNC_LOG. Every other call goes to the C library.
 * Not thread-safe in count mode beyond what the tests need: one sync at a time fails. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int should_fail(int fd) {
    const char *trigger = getenv("LIENTHONG_FAIL_SYNC_TRIGGER");
    const char *suffix = getenv("LIENTHONG_FAIL_SYNC_SUFFIX");
    if (!trigger || !suffix || access(trigger, F_OK) != 0) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = 0;
    size_t s = strlen(suffix);
    if ((size_t)n < s || strcmp(path + n - s, suffix) != 0) return 0;
    FILE *t = fopen(trigger, "r");
    if (!t) return 0;
    long left = -1;
    if (fscanf(t, "%ld", &left) != 1) left = -1;
    fclose(t);
    if (left == 0) return 0;
    if (left == 1) {
        unlink(trigger);
    } else if (left > 1) {
        t = fopen(trigger, "w");
        if (t) {
            fprintf(t, "%ld", left - 1);
            fclose(t);
        }
    }
    const char *log = getenv("LIENTHONG_FAIL_SYNC_LOG");
    if (log) {
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (out >= 0) {
            path[n] = '\n';
            ssize_t written = write(out, path, (size_t)n + 1);
            (void)written;
            close(out);
        }
    }
    return 1;
}

/* The sync `name` of the C library, unless this one is to fail. */
static int sync_or_fail(const char *name, int fd) {
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    return real(fd);
}

int fsync(int fd) { return sync_or_fail("fsync", fd); }

int fdatasync(int fd) { return sync_or_fail("fdatasync", fd); }
