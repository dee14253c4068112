/*
 * files.c: every file the engine reads or writes goes through here.
 *
 * Reading: a loader opens only regular files. The path is checked before it
 * is opened and the open descriptor again after, and the open itself never
 * waits (O_NONBLOCK), so a FIFO, a device, a socket or a directory is an
 * error naming the path instead of a read that blocks forever or never ends.
 * Whole-file reads stop at a limit the caller gives.
 *
 * Writing (tc_file_write_atomic): the bytes go to a temporary file in the
 * target's directory, which is fsynced and renamed over the target, and the
 * directory is fsynced; a reader or a crash sees the old file or the whole
 * new one. The target is the end of any chain of symbolic links (the links
 * stay links), an existing target keeps its mode (and owner, where allowed),
 * and a new file gets 0666 less the umask. The temporary is named
 * `.<name>.tc-tmp-XXXXXX`, `<name>` cut so that the whole stays within
 * NAME_MAX. Its writer holds an flock on it until the rename, so a
 * temporary nobody holds was left by a writer that died (the kernel drops
 * the lock with the process); each save removes such leftovers for the same
 * target name (any unlocked regular file named like one, so the pattern is
 * kept unusual). Where the file system has no flock, nothing is removed.
 * No signal handler, no global state: a lock belongs to an open file, so
 * threads and processes are alike.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEMPORARY_MARK ".tc-tmp-"
#define TEMPORARY_RANDOM 6
/* "." + name + mark + random: the name's share of NAME_MAX. */
#define TEMPORARY_NAME_ROOM (NAME_MAX - 1 - (int)(sizeof TEMPORARY_MARK - 1) - TEMPORARY_RANDOM)
#define SYMLINK_HOPS 40
/* Reads and writes go in pieces of at most this (Linux moves at most
 * 2^31 - 4096 bytes per call). */
#define IO_CHUNK ((size_t)1 << 30)

static const char *file_kind_name(mode_t mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "not a regular file";
}

const char *tc_file_kind(const char *path) {
    struct stat info;
    if (!path || stat(path, &info) != 0) return NULL;
    if (S_ISREG(info.st_mode)) return "file";
    if (S_ISDIR(info.st_mode)) return "directory";
    if (S_ISFIFO(info.st_mode)) return "fifo";
    if (S_ISCHR(info.st_mode)) return "character device";
    if (S_ISBLK(info.st_mode)) return "block device";
    if (S_ISSOCK(info.st_mode)) return "socket";
    return "other";
}

static tc_status not_regular(tc_context *ctx, const char *fn, const char *path, mode_t mode) {
    return tc_fail(ctx, TC_ERROR_IO, "%s: '%s' is %s, not a regular file", fn, path, file_kind_name(mode));
}

static void identity_of(const struct stat *info, tc_file_identity *identity) {
    identity->size = (int64_t)info->st_size;
    identity->mtime_ns = (int64_t)info->st_mtim.tv_sec * 1000000000 + info->st_mtim.tv_nsec;
}

tc_status tc_file_open_regular(tc_context *ctx, const char *fn, const char *path, int *fd,
                               tc_file_identity *identity) {
    *fd = -1;
    if (!path || !path[0]) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: the path is empty", fn);
    /* Looked at before opening, so that opening a device has no effect. */
    struct stat info;
    if (stat(path, &info) == 0 && !S_ISREG(info.st_mode)) return not_regular(ctx, fn, path, info.st_mode);
    int opened = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (opened < 0) return tc_fail(ctx, TC_ERROR_IO, "%s: cannot open '%s': %s", fn, path, strerror(errno));
    /* The path may have been replaced since the stat: the descriptor decides. */
    tc_status status = TC_OK;
    if (fstat(opened, &info) != 0)
        status = tc_fail(ctx, TC_ERROR_IO, "%s: cannot stat '%s': %s", fn, path, strerror(errno));
    else if (!S_ISREG(info.st_mode))
        status = not_regular(ctx, fn, path, info.st_mode);
    if (status != TC_OK) {
        close(opened);
        return status;
    }
    int flags = fcntl(opened, F_GETFL);
    if (flags >= 0) (void)fcntl(opened, F_SETFL, flags & ~O_NONBLOCK);
    *fd = opened;
    if (identity) identity_of(&info, identity);
    return TC_OK;
}

tc_status tc_file_check_unchanged(tc_context *ctx, const char *fn, const char *path, int fd,
                                  const tc_file_identity *identity) {
    struct stat info;
    if (fstat(fd, &info) != 0)
        return tc_fail(ctx, TC_ERROR_IO, "%s: cannot stat '%s': %s", fn, path, strerror(errno));
    tc_file_identity now;
    identity_of(&info, &now);
    if (now.size != identity->size)
        return tc_fail(ctx, TC_ERROR_IO, "%s: '%s' changed since it was opened (%lld bytes then, %lld now); open it "
                       "again", fn, path, (long long)identity->size, (long long)now.size);
    if (now.mtime_ns != identity->mtime_ns)
        return tc_fail(ctx, TC_ERROR_IO, "%s: '%s' changed since it was opened (it was rewritten in place); open it "
                       "again", fn, path);
    return TC_OK;
}

tc_status tc_file_read_at(tc_context *ctx, const char *fn, const char *path, int fd, void *data, size_t size,
                          int64_t offset) {
    unsigned char *p = data;
    int64_t at = offset;
    while (size > 0) {
        ssize_t n = pread(fd, p, size < IO_CHUNK ? size : IO_CHUNK, (off_t)at);
        if (n < 0) {
            if (errno == EINTR) continue;
            return tc_fail(ctx, TC_ERROR_IO, "%s: reading '%s' failed: %s", fn, path, strerror(errno));
        }
        if (n == 0)
            return tc_fail(ctx, TC_ERROR_IO, "%s: '%s' ends at byte %lld, before the %zu bytes wanted from byte %lld "
                           "(it was truncated while open?)", fn, path, (long long)at, size, (long long)offset);
        p += n;
        at += n;
        size -= (size_t)n;
    }
    return TC_OK;
}

tc_status tc_file_read_all(tc_context *ctx, const char *fn, const char *path, size_t max_bytes, char **data,
                           size_t *size) {
    *data = NULL;
    *size = 0;
    int fd;
    tc_file_identity identity;
    TC_TRY(tc_file_open_regular(ctx, fn, path, &fd, &identity));
    if ((uint64_t)identity.size > max_bytes) {
        close(fd);
        return tc_fail(ctx, TC_ERROR_IO, "%s: '%s' is %lld bytes, more than the %zu this reads", fn, path,
                       (long long)identity.size, max_bytes);
    }
    /* The size is a hint (the file may grow while read; some files claim
     * 0): read to the end, growing the buffer, up to max_bytes. */
    size_t capacity = (size_t)identity.size + 1, length = 0;
    char *buffer = malloc(capacity);
    tc_status status = buffer ? TC_OK : tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory reading '%s'", fn, path);
    while (status == TC_OK) {
        if (length == capacity - 1) {
            /* Full: one more byte says whether the file goes on. */
            char probe;
            ssize_t n = read(fd, &probe, 1);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                if (n < 0) status = tc_fail(ctx, TC_ERROR_IO, "%s: reading '%s' failed: %s", fn, path,
                                            strerror(errno));
                break;
            }
            if (length >= max_bytes) {
                status = tc_fail(ctx, TC_ERROR_IO, "%s: '%s' holds more than the %zu bytes this reads", fn, path,
                                 max_bytes);
                break;
            }
            size_t want = length < 32768 ? 65536 : length > SIZE_MAX / 4 ? max_bytes : length * 2;
            if (want > max_bytes) want = max_bytes;
            char *bigger = realloc(buffer, want + 1);
            if (!bigger) {
                status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory reading '%s'", fn, path);
                break;
            }
            buffer = bigger;
            capacity = want + 1;
            buffer[length++] = probe;
            continue;
        }
        size_t room = capacity - 1 - length;
        ssize_t n = read(fd, buffer + length, room < IO_CHUNK ? room : IO_CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) status = tc_fail(ctx, TC_ERROR_IO, "%s: reading '%s' failed: %s", fn, path, strerror(errno));
        else if (n == 0) break;
        else length += (size_t)n;
    }
    close(fd);
    if (status != TC_OK) {
        free(buffer);
        return status;
    }
    buffer[length] = '\0';
    *data = buffer;
    *size = length;
    return TC_OK;
}

tc_status tc_file_write_all(tc_context *ctx, const char *fn, int fd, const void *data, size_t size,
                            const char *path) {
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size < IO_CHUNK ? size : IO_CHUNK);
        if (n < 0) {
            if (errno == EINTR) continue;
            return tc_fail(ctx, TC_ERROR_IO, "%s: writing '%s' failed: %s", fn, path, strerror(errno));
        }
        p += n;
        size -= (size_t)n;
    }
    return TC_OK;
}

tc_status tc_file_append(tc_context *ctx, const char *fn, const char *path, const void *data, size_t size) {
    if (!path || !path[0]) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: the path is empty", fn);
    struct stat info;
    if (stat(path, &info) == 0 && !S_ISREG(info.st_mode)) return not_regular(ctx, fn, path, info.st_mode);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0666);
    if (fd < 0) return tc_fail(ctx, TC_ERROR_IO, "%s: cannot open '%s' to append: %s", fn, path, strerror(errno));
    tc_status status = TC_OK;
    if (fstat(fd, &info) != 0) status = tc_fail(ctx, TC_ERROR_IO, "%s: cannot stat '%s': %s", fn, path,
                                                strerror(errno));
    else if (!S_ISREG(info.st_mode)) status = not_regular(ctx, fn, path, info.st_mode);
    if (status == TC_OK) status = tc_file_write_all(ctx, fn, fd, data, size, path);
    if (close(fd) != 0 && status == TC_OK)
        status = tc_fail(ctx, TC_ERROR_IO, "%s: closing '%s' failed: %s", fn, path, strerror(errno));
    return status;
}

/* ---- atomic writes ---- */

/* The file a write to path lands on: path itself, or the end of its chain of
 * symbolic links (which need not exist yet). Owned by the caller. */
static tc_status resolve_target(tc_context *ctx, const char *fn, const char *path, char **out) {
    char *current = strdup(path);
    if (!current) return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
    for (int hop = 0;; hop++) {
        struct stat info;
        if (lstat(current, &info) != 0) {
            if (errno == ENOENT) break; /* a new file */
            tc_status status = tc_fail(ctx, TC_ERROR_IO, "%s: cannot write '%s': %s", fn, current, strerror(errno));
            free(current);
            return status;
        }
        if (!S_ISLNK(info.st_mode)) break;
        if (hop == SYMLINK_HOPS) {
            free(current);
            return tc_fail(ctx, TC_ERROR_IO, "%s: cannot write '%s': more than %d symbolic links in a chain", fn,
                           path, SYMLINK_HOPS);
        }
        size_t room = info.st_size > 0 ? (size_t)info.st_size + 1 : PATH_MAX;
        char *link = malloc(room);
        ssize_t n = link ? readlink(current, link, room) : -1;
        if (n < 0 || (size_t)n >= room) {
            tc_status status = link && n < 0 ? tc_fail(ctx, TC_ERROR_IO, "%s: cannot read the link '%s': %s", fn,
                                                       current, strerror(errno))
                                             : tc_fail(ctx, TC_ERROR_IO, "%s: the link '%s' changed while read", fn,
                                                       current);
            free(link);
            free(current);
            return status;
        }
        link[n] = '\0';
        char *next;
        const char *slash = strrchr(current, '/');
        if (link[0] == '/' || !slash) {
            next = link;
        } else {
            size_t dir_length = (size_t)(slash - current) + 1;
            next = malloc(dir_length + (size_t)n + 1);
            if (next) {
                memcpy(next, current, dir_length);
                memcpy(next + dir_length, link, (size_t)n + 1);
            }
            free(link);
        }
        free(current);
        if (!next) return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
        current = next;
    }
    *out = current;
    return TC_OK;
}

/* The directory part of path ("." when it has none) and where its last
 * component starts. */
static char *directory_of(const char *path, const char **name) {
    const char *slash = strrchr(path, '/');
    *name = slash ? slash + 1 : path;
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* The temporaries of a target share ".<name>.tc-tmp-"; writes it into
 * prefix (TEMPORARY_NAME_ROOM + 16 bytes) and returns its length. */
static size_t temporary_prefix(const char *name, char *prefix) {
    size_t length = strlen(name);
    if (length > TEMPORARY_NAME_ROOM) length = TEMPORARY_NAME_ROOM;
    prefix[0] = '.';
    memcpy(prefix + 1, name, length);
    memcpy(prefix + 1 + length, TEMPORARY_MARK, sizeof TEMPORARY_MARK);
    return 1 + length + sizeof TEMPORARY_MARK - 1;
}

static void random_suffix(char *out) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char bytes[TEMPORARY_RANDOM];
    if (getrandom(bytes, sizeof bytes, GRND_NONBLOCK) != (ssize_t)sizeof bytes) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t mix = (uint64_t)now.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 20 ^
                       (uint64_t)(uintptr_t)&now;
        for (int i = 0; i < TEMPORARY_RANDOM; i++) bytes[i] = (unsigned char)(mix >> (8 * i));
    }
    for (int i = 0; i < TEMPORARY_RANDOM; i++) out[i] = alphabet[bytes[i] % (sizeof alphabet - 1)];
    out[TEMPORARY_RANDOM] = '\0';
}

/* True when the directory entry (opened as fd) still is that file. */
static bool entry_is(int dir_fd, const char *entry, int fd) {
    struct stat by_name, by_fd;
    return fstatat(dir_fd, entry, &by_name, AT_SYMLINK_NOFOLLOW) == 0 && fstat(fd, &by_fd) == 0 &&
           by_name.st_dev == by_fd.st_dev && by_name.st_ino == by_fd.st_ino;
}

/* Removes the temporaries of earlier writes to the same name whose writers
 * are gone: the lock their writer held until its rename is free. A live
 * writer's lock makes flock fail, and one that creates its file just before
 * the lock is taken here finds its name gone after locking and starts
 * again (create_temporary). Best effort: any failure leaves the file. */
static void remove_stale_temporaries(const char *directory, const char *prefix, size_t prefix_length) {
    DIR *dir = opendir(directory);
    if (!dir) return;
    int dir_fd = dirfd(dir);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strncmp(entry->d_name, prefix, prefix_length) != 0 ||
            strlen(entry->d_name) != prefix_length + TEMPORARY_RANDOM)
            continue;
        int fd = openat(dir_fd, entry->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat info;
        if (fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            entry_is(dir_fd, entry->d_name, fd))
            (void)unlinkat(dir_fd, entry->d_name, 0);
        close(fd); /* drops the lock */
    }
    closedir(dir);
}

/* Creates and locks a fresh temporary in directory; *name gets its path. */
static tc_status create_temporary(tc_context *ctx, const char *fn, const char *target, const char *directory,
                                  const char *prefix, const struct stat *existing, char **name, int *fd) {
    size_t directory_length = strlen(directory);
    size_t size = directory_length + 1 + strlen(prefix) + TEMPORARY_RANDOM + 1;
    char *path = malloc(size);
    if (!path) return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
    int dir_fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int saved = errno;
    for (int attempt = 0; dir_fd >= 0 && attempt < 100; attempt++) {
        char suffix[TEMPORARY_RANDOM + 1];
        random_suffix(suffix);
        snprintf(path, size, "%s/%s%s", directory, prefix, suffix);
        const char *entry = path + directory_length + 1;
        /* With a target to replace, no one else may read the new bytes
         * before its mode is set below. */
        int opened = openat(dir_fd, entry, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                            existing ? 0600 : 0666);
        if (opened < 0) {
            saved = errno;
            if (saved == EEXIST || saved == EINTR) continue;
            break;
        }
        /* A cleaner that holds the lock (it took the new file for stale)
         * removes it, as it does a file it unlinked before the lock was
         * taken here: start again under a new name. A file system without
         * locks fails every flock alike, so its cleaners remove nothing and
         * the write goes on unlocked. */
        bool taken = flock(opened, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        if (taken || !entry_is(dir_fd, entry, opened)) {
            close(opened);
            continue;
        }
        if (existing) {
            if (existing->st_uid != geteuid() || existing->st_gid != getegid())
                (void)fchown(opened, existing->st_uid, existing->st_gid);
            if (fchmod(opened, existing->st_mode & 07777) != 0) {
                saved = errno;
                close(opened);
                (void)unlinkat(dir_fd, entry, 0);
                close(dir_fd);
                free(path);
                return tc_fail(ctx, TC_ERROR_IO, "%s: cannot give the new '%s' the mode %o of the old one: %s", fn,
                               target, (unsigned)(existing->st_mode & 07777), strerror(saved));
            }
        }
        close(dir_fd);
        *name = path;
        *fd = opened;
        return TC_OK;
    }
    if (dir_fd >= 0) close(dir_fd);
    free(path);
    return tc_fail(ctx, TC_ERROR_IO, "%s: cannot create a temporary file in '%s' to write '%s': %s", fn, directory,
                   target, strerror(saved ? saved : EEXIST));
}

/* fsync of the directory makes the rename itself durable; some file
 * systems refuse it, which costs durability only, so it is best effort. */
static void sync_directory(const char *directory) {
    int fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

tc_status tc_file_write_atomic(tc_context *ctx, const char *fn, const char *path, tc_file_write_fn fill,
                               void *user) {
    if (!path || !path[0]) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: the path is empty", fn);
    char *target = NULL;
    TC_TRY(resolve_target(ctx, fn, path, &target));
    struct stat existing;
    bool exists = stat(target, &existing) == 0;
    if (exists && !S_ISREG(existing.st_mode)) {
        tc_status status = not_regular(ctx, fn, target, existing.st_mode);
        free(target);
        return status;
    }
    const char *name;
    char *directory = directory_of(target, &name);
    if (!directory) {
        free(target);
        return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
    }
    char prefix[TEMPORARY_NAME_ROOM + 16];
    size_t prefix_length = temporary_prefix(name, prefix);
    remove_stale_temporaries(directory, prefix, prefix_length);
    char *temporary = NULL;
    int fd = -1;
    tc_status status = create_temporary(ctx, fn, target, directory, prefix, exists ? &existing : NULL, &temporary,
                                        &fd);
    if (status == TC_OK) {
        status = fill(user, fd, temporary);
        if (status == TC_OK && fsync(fd) != 0)
            status = tc_fail(ctx, TC_ERROR_IO, "%s: writing '%s' failed: %s", fn, target, strerror(errno));
        /* Renamed while still locked, so no cleaner takes it for stale. */
        if (status == TC_OK && rename(temporary, target) != 0)
            status = tc_fail(ctx, TC_ERROR_IO, "%s: cannot rename '%s' to '%s': %s", fn, temporary, target,
                             strerror(errno));
        if (status != TC_OK) unlink(temporary);
        if (close(fd) != 0 && status == TC_OK)
            status = tc_fail(ctx, TC_ERROR_IO, "%s: closing '%s' failed: %s", fn, target, strerror(errno));
        if (status == TC_OK) sync_directory(directory);
    }
    free(temporary);
    free(directory);
    free(target);
    return status;
}

typedef struct byte_span {
    tc_context *ctx;
    const char *fn;
    const void *data;
    size_t size;
} byte_span;

static tc_status write_span(void *user, int fd, const char *temporary) {
    const byte_span *span = user;
    return tc_file_write_all(span->ctx, span->fn, fd, span->data, span->size, temporary);
}

tc_status tc_file_write_bytes_atomic(tc_context *ctx, const char *fn, const char *path, const void *data,
                                     size_t size) {
    byte_span span = {ctx, fn, data, size};
    return tc_file_write_atomic(ctx, fn, path, write_span, &span);
}
