/*
 * errinject: run a command with chosen system calls failing with a chosen
 * errno, for fault tests that need neither root nor mounts (a full disk, a
 * read-only file system, a failing fdatasync).
 *
 * Usage: errinject ERRNO SYSCALL[,SYSCALL...] COMMAND [ARG...]
 *   ERRNO    ENOSPC, EROFS, EACCES or EIO
 *   SYSCALL  fdatasync, fsync, write (only fds >= 3, so stdout and stderr
 *            still work), pwrite, bigwrite (write/pwrite of 64 bytes or more
 *            to fds >= 3: entry data, but not a small pid or marker
 *            file), open-write (open/openat asking for write
 *            access or O_CREAT), mkdir, fallocate, ftruncate, rename
 *
 * The one idea: a seccomp filter returning SECCOMP_RET_ERRNO is inherited
 * across execve, so the command runs unmodified and sees the kernel refuse
 * exactly those calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "errinject: unsupported architecture"
#endif

enum cond { ALWAYS, FD_GE3, OPEN_WRITE, BIG_WRITE };
struct rule {
    const char *name;
    long nr;
    enum cond cond;
    int arg; /* which argument the condition looks at */
};

static const struct rule rules[] = {
    {"fdatasync", __NR_fdatasync, ALWAYS, 0},   {"fsync", __NR_fsync, ALWAYS, 0},
    {"write", __NR_write, FD_GE3, 0},           {"write", __NR_writev, FD_GE3, 0},
    {"pwrite", __NR_pwrite64, FD_GE3, 0},       {"pwrite", __NR_pwritev, FD_GE3, 0},
    {"bigwrite", __NR_write, BIG_WRITE, 0},     {"bigwrite", __NR_pwrite64, BIG_WRITE, 0},
#ifdef __NR_open
    {"open-write", __NR_open, OPEN_WRITE, 1},
#endif
    {"open-write", __NR_openat, OPEN_WRITE, 2},
#ifdef __NR_mkdir
    {"mkdir", __NR_mkdir, ALWAYS, 0},
#endif
    {"mkdir", __NR_mkdirat, ALWAYS, 0},         {"fallocate", __NR_fallocate, ALWAYS, 0},
    {"ftruncate", __NR_ftruncate, ALWAYS, 0},
#ifdef __NR_rename
    {"rename", __NR_rename, ALWAYS, 0},
#endif
    {"rename", __NR_renameat, ALWAYS, 0},       {"rename", __NR_renameat2, ALWAYS, 0},
};

#define MAX_INSNS 256

static int errno_named(const char *s)
{
    if (strcmp(s, "ENOSPC") == 0)
        return ENOSPC;
    if (strcmp(s, "EROFS") == 0)
        return EROFS;
    if (strcmp(s, "EACCES") == 0)
        return EACCES;
    if (strcmp(s, "EIO") == 0)
        return EIO;
    return -1;
}

static int wanted(const char *list, const char *name);

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: errinject ERRNO SYSCALL[,SYSCALL...] COMMAND [ARG...]\n");
        return 64;
    }
    int err_no = errno_named(argv[1]);
    if (err_no < 0) {
        fprintf(stderr, "errinject: unknown errno '%s'\n", argv[1]);
        return 64;
    }
    struct sock_filter f[MAX_INSNS];
    int n = 0;
    const __u32 deny = SECCOMP_RET_ERRNO | (__u32)err_no;
    f[n++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    int matched = 0;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (!wanted(argv[2], rules[i].name))
            continue;
        matched++;
        /* Reload nr: a previous block may have loaded an argument. */
        f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                              offsetof(struct seccomp_data, nr));
        unsigned arg_off = (unsigned)offsetof(struct seccomp_data, args[rules[i].arg]);
        if (rules[i].cond == BIG_WRITE) {
            /* fd >= 3 and count (argument 2) >= 64: data, not a pid file */
            f[n++] =
                (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)rules[i].nr, 0, 6);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg_off);
            f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 3, 0, 3);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                  offsetof(struct seccomp_data, args[2]));
            f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 64, 0, 1);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        } else if (rules[i].cond == ALWAYS) {
            f[n++] =
                (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)rules[i].nr, 0, 1);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
        } else {
            f[n++] =
                (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)rules[i].nr, 0, 4);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg_off);
            if (rules[i].cond == FD_GE3)
                f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 3, 0, 1);
            else
                f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K,
                                                      O_WRONLY | O_RDWR | O_CREAT, 0, 1);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        }
    }
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    if (!matched) {
        fprintf(stderr, "errinject: no known system call in '%s'\n", argv[2]);
        return 64;
    }
    struct sock_fprog prog = {.len = (unsigned short)n, .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "errinject: seccomp: %s\n", strerror(errno));
        return 71;
    }
    execvp(argv[3], argv + 3);
    fprintf(stderr, "errinject: %s: %s\n", argv[3], strerror(errno));
    return 127;
}

/* True if name is one of the comma-separated words of list. */
static int wanted(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t w = comma ? (size_t)(comma - p) : strlen(p);
        if (w == len && strncmp(p, name, len) == 0)
            return 1;
        p += w + (comma ? 1 : 0);
    }
    return 0;
}
