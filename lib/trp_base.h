/*
 * trp_base.h: what every part of libtrp shares: status codes, the error
 * record that carries a message a person can act on, and the version.
 *
 * The one idea: a lib function never prints and never exits. It returns a
 * trp status (0 on success) and fills a trp_err whose text names the thing
 * and the reason; cmd/ turns that into a stderr line and a sysexits(3) code
 * with trp_exit_code().
 */
#ifndef TRP_BASE_H
#define TRP_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum trp_status {
    TRP_OK = 0,
    TRP_EINVAL,    /* bad argument or input from the caller        -> 64 */
    TRP_ENOENT,    /* a file or directory that should exist doesn't -> 66 */
    TRP_EFORMAT,   /* not a trp log, or an unsupported version      -> 65 */
    TRP_ECORRUPT,  /* integrity violation: checksum, chain, seq gap -> 1  */
    TRP_EIO,       /* read/write/fsync failed                       -> 74 */
    TRP_ENOSPC,    /* the disk is full                              -> 74 */
    TRP_EPERM,     /* permission denied, read-only file system      -> 77 */
    TRP_ELOCKED,   /* another writer holds the directory            -> 75 */
    TRP_ETOOBIG,   /* entry larger than max_entry                   -> 65 */
    TRP_ECONFLICT, /* conditional append: head hash differs         -> 1  */
    TRP_ECONFIG,   /* bad configuration                             -> 78 */
    TRP_EUNAVAIL,  /* no leader / timed out; retry later            -> 75 */
    TRP_ENOMEM,    /* out of memory                                 -> 71 */
    TRP_ESTATE,    /* call not valid in this state (closed, ...)    -> 70 */
    TRP_ERANGE,    /* seq outside what the log holds                -> 65 */
};

#define TRP_ERR_MSG_MAX 1024

typedef struct trp_err {
    int code;                   /* enum trp_status */
    int sys_errno;              /* errno behind it, or 0 */
    char msg[TRP_ERR_MSG_MAX];  /* "events/00000000000000000000.seg: ..." */
} trp_err;

/* Make err empty. Cheaper than `trp_err err = {0}`, which writes all of
 * msg: for paths that run once per entry or datagram. */
static inline void trp_err_clear(trp_err *err)
{
    err->code = 0;
    err->sys_errno = 0;
    err->msg[0] = '\0';
}

/* Fill err (if not NULL) and return code; printf-style message. */
int trp_err_set(trp_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like trp_err_set, appending ": strerror(sys_errno)" and mapping errno
 * (ENOENT, ENOSPC, EACCES/EROFS/EPERM, ENOMEM) to the matching status when
 * code is TRP_EIO. */
int trp_err_sys(trp_err *err, int code, int sys_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefix err->msg with "prefix: " (for adding context on the way up). */
void trp_err_prefix(trp_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The sysexits(3) status a command should exit with for a status. */
int trp_exit_code(int status);
/* A short name for a status ("corrupt", "io", ...). */
const char *trp_status_name(int status);

/* "0.1.0" */
const char *trp_version(void);

#ifdef __cplusplus
}
#endif
#endif
