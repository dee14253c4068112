/*
 * files_test.c: the engine's file helpers (files.c) from C: loaders refuse
 * what is not a regular file without blocking, whole-file reads stop at
 * their limit, the open-file check notices a file changed in place, and the
 * atomic writer keeps modes, follows links, fits long names, cleans up
 * after a failing writer and removes only the temporaries nobody holds.
 */
#include "internal.h"

#include "check.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static char directory[256];

static void path_in(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", directory, name); }

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static bool contains(const char *text, const char *part) { return text && strstr(text, part) != NULL; }

/* Names in the test directory that look like our temporaries. */
static int count_temporaries(void) {
    char command[400];
    snprintf(command, sizeof command, "ls -A '%s' | grep -c '\\.tc-tmp-'", directory);
    FILE *pipe = popen(command, "r");
    int count = -1;
    if (pipe) {
        if (fscanf(pipe, "%d", &count) != 1) count = -1;
        pclose(pipe);
    }
    return count;
}

static void test_readers(tc_context *ctx) {
    char fifo[300], dir[300], file[300];
    path_in(fifo, sizeof fifo, "pipe");
    path_in(dir, sizeof dir, "sub");
    path_in(file, sizeof file, "text");
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    CHECK(mkdir(dir, 0700) == 0, "mkdir");
    write_text(file, "0123456789");
    int fd;
    CHECK(tc_file_open_regular(ctx, "probe", fifo, &fd, NULL) == TC_ERROR_IO &&
              contains(tc_last_error(ctx), "probe: '") && contains(tc_last_error(ctx), "pipe' is a FIFO"),
          "a FIFO: %s", tc_last_error(ctx));
    CHECK(tc_file_open_regular(ctx, "probe", dir, &fd, NULL) == TC_ERROR_IO &&
              contains(tc_last_error(ctx), "is a directory, not a regular file"),
          "a directory: %s", tc_last_error(ctx));
    CHECK(tc_file_open_regular(ctx, "probe", "/dev/zero", &fd, NULL) == TC_ERROR_IO &&
              contains(tc_last_error(ctx), "'/dev/zero' is a character device"),
          "a device: %s", tc_last_error(ctx));
    char *data;
    size_t size;
    CHECK(tc_file_read_all(ctx, "probe", "/dev/zero", 1 << 20, &data, &size) == TC_ERROR_IO && data == NULL,
          "read_all of a device");
    CHECK(tc_file_read_all(ctx, "probe", file, 4, &data, &size) == TC_ERROR_IO &&
              contains(tc_last_error(ctx), "is 10 bytes, more than the 4"),
          "over the limit: %s", tc_last_error(ctx));
    CHECK(tc_file_read_all(ctx, "probe", file, 10, &data, &size) == TC_OK && size == 10 &&
              memcmp(data, "0123456789", 11) == 0,
          "exactly at the limit, NUL after");
    free(data);
    /* A file whose size says 0 but which holds more is read to its end,
     * within the limit. */
    CHECK(tc_file_read_all(ctx, "probe", "/proc/self/status", 1 << 20, &data, &size) == TC_OK && size > 100 &&
              strncmp(data, "Name:", 5) == 0,
          "a /proc file");
    free(data);
    CHECK(tc_file_read_all(ctx, "probe", "/proc/self/status", 10, &data, &size) == TC_ERROR_IO &&
              contains(tc_last_error(ctx), "holds more than the 10 bytes"),
          "a /proc file over the limit: %s", tc_last_error(ctx));
    CHECK(strcmp(tc_file_kind(fifo), "fifo") == 0 && strcmp(tc_file_kind(dir), "directory") == 0 &&
              strcmp(tc_file_kind(file), "file") == 0 && tc_file_kind("/nonexistent/x") == NULL,
          "file kinds");

    /* A file changed in place after opening is noticed. */
    tc_file_identity identity;
    CHECK(tc_file_open_regular(ctx, "probe", file, &fd, &identity) == TC_OK && identity.size == 10, "open");
    char bytes[4];
    CHECK(tc_file_read_at(ctx, "probe", file, fd, bytes, 4, 6) == TC_OK && memcmp(bytes, "6789", 4) == 0, "read_at");
    CHECK(tc_file_check_unchanged(ctx, "probe", file, fd, &identity) == TC_OK, "unchanged");
    CHECK(tc_file_read_at(ctx, "probe", file, fd, bytes, 4, 8) == TC_ERROR_IO &&
              contains(tc_last_error(ctx), "ends at byte 10"),
          "read past the end: %s", tc_last_error(ctx));
    write_text(file, "abcdefghij"); /* same size */
    struct timeval times[2] = {{1000000000, 0}, {1000000000, 0}};
    utimes(file, times);
    CHECK(tc_file_check_unchanged(ctx, "probe", file, fd, &identity) == TC_ERROR_IO &&
              contains(tc_last_error(ctx), "changed since it was opened (it was rewritten in place)"),
          "rewritten: %s", tc_last_error(ctx));
    CHECK(truncate(file, 3) == 0, "truncate");
    CHECK(tc_file_check_unchanged(ctx, "probe", file, fd, &identity) == TC_ERROR_IO &&
              contains(tc_last_error(ctx), "(10 bytes then, 3 now)"),
          "truncated: %s", tc_last_error(ctx));
    close(fd);
}

typedef struct failing_writer {
    tc_context *ctx;
    int written;
} failing_writer;

/* Writes some bytes, then fails as a writer that runs out of input would. */
static tc_status write_then_fail(void *user, int fd, const char *temporary) {
    failing_writer *w = user;
    TC_TRY(tc_file_write_all(w->ctx, "probe", fd, "partial", 7, temporary));
    w->written = 7;
    return tc_fail(w->ctx, TC_ERROR_IO, "probe: the writer gave up");
}

static void test_atomic_writes(tc_context *ctx) {
    char target[300], link_path[300], long_name[600], fifo[300];
    path_in(target, sizeof target, "saved");
    path_in(link_path, sizeof link_path, "link");
    path_in(fifo, sizeof fifo, "pipe");
    CHECK(tc_file_write_bytes_atomic(ctx, "probe", target, "one", 3) == TC_OK, "new file");
    CHECK(chmod(target, 0604) == 0, "chmod");
    CHECK(tc_file_write_bytes_atomic(ctx, "probe", target, "two", 3) == TC_OK, "replace");
    struct stat info;
    CHECK(stat(target, &info) == 0 && (info.st_mode & 07777) == 0604, "mode kept: %o", (unsigned)info.st_mode);

    /* A writer that fails: the old file stays, no temporary is left. */
    failing_writer w = {ctx, 0};
    CHECK(tc_file_write_atomic(ctx, "probe", target, write_then_fail, &w) == TC_ERROR_IO && w.written == 7 &&
              contains(tc_last_error(ctx), "the writer gave up"),
          "failing writer: %s", tc_last_error(ctx));
    char *data;
    size_t size;
    CHECK(tc_file_read_all(ctx, "probe", target, 100, &data, &size) == TC_OK && size == 3 &&
              memcmp(data, "two", 3) == 0,
          "old contents kept");
    free(data);
    CHECK(count_temporaries() == 0, "no temporary left by the failing writer");

    /* Through a link: the target changes, the link stays. */
    CHECK(symlink("saved", link_path) == 0, "symlink");
    CHECK(tc_file_write_bytes_atomic(ctx, "probe", link_path, "three", 5) == TC_OK, "through the link");
    CHECK(lstat(link_path, &info) == 0 && S_ISLNK(info.st_mode), "still a link");
    CHECK(tc_file_read_all(ctx, "probe", target, 100, &data, &size) == TC_OK && size == 5, "target written");
    free(data);
    CHECK(stat(target, &info) == 0 && (info.st_mode & 07777) == 0604, "mode kept through the link");

    /* A 255-byte name. */
    char name[256];
    memset(name, 'x', 255);
    name[255] = '\0';
    path_in(long_name, sizeof long_name, name);
    CHECK(tc_file_write_bytes_atomic(ctx, "probe", long_name, "long", 4) == TC_OK, "255-byte name: %s",
          tc_last_error(ctx));
    CHECK(tc_file_write_bytes_atomic(ctx, "probe", long_name, "longer", 6) == TC_OK, "255-byte name again");

    /* Not a regular file: refused, not replaced. */
    CHECK(mkfifo(fifo, 0600) == 0 || access(fifo, F_OK) == 0, "mkfifo");
    CHECK(tc_file_write_bytes_atomic(ctx, "probe", fifo, "x", 1) == TC_ERROR_IO &&
              contains(tc_last_error(ctx), "is a FIFO, not a regular file"),
          "onto a FIFO: %s", tc_last_error(ctx));
    CHECK(strcmp(tc_file_kind(fifo), "fifo") == 0, "the FIFO is still there");

    /* Stale temporaries go, a held one stays. */
    char stale[300], held[300];
    path_in(stale, sizeof stale, ".saved.tc-tmp-aaaaaa");
    path_in(held, sizeof held, ".saved.tc-tmp-bbbbbb");
    write_text(stale, "stale");
    write_text(held, "held");
    int holder = open(held, O_RDONLY | O_CLOEXEC);
    CHECK(holder >= 0 && flock(holder, LOCK_EX | LOCK_NB) == 0, "hold the lock");
    CHECK(tc_file_write_bytes_atomic(ctx, "probe", target, "four", 4) == TC_OK, "save with temporaries around");
    CHECK(access(stale, F_OK) != 0, "the stale temporary is removed");
    CHECK(access(held, F_OK) == 0, "the held temporary stays");
    close(holder);
    CHECK(tc_file_write_bytes_atomic(ctx, "probe", target, "five", 4) == TC_OK, "save after the holder is gone");
    CHECK(access(held, F_OK) != 0, "the released temporary is removed");
    CHECK(count_temporaries() == 0, "no temporaries left");
}

int main(void) {
    snprintf(directory, sizeof directory, "/tmp/tricycle_files_XXXXXX");
    if (!mkdtemp(directory)) {
        perror("mkdtemp");
        return 1;
    }
    tc_context *ctx = tc_context_new();
    test_readers(ctx);
    test_atomic_writes(ctx);
    tc_context_free(ctx);
    char command[400];
    snprintf(command, sizeof command, "rm -rf '%s'", directory);
    if (system(command) != 0) printf("could not remove %s\n", directory);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
