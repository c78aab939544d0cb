/*
 * base.c: error records and status-to-exit-code mapping shared by all of
 * libtrp and the commands.
 */
#include "trp_base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#ifndef TRP_VERSION
#define TRP_VERSION "0.0.0"
#endif

int trp_err_set(trp_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
        err->sys_errno = 0;
    }
    return code;
}

static int status_from_errno(int code, int sys_errno)
{
    if (code != TRP_EIO)
        return code;
    switch (sys_errno) {
    case ENOENT: return TRP_ENOENT;
    case ENOSPC:
    case EDQUOT: return TRP_ENOSPC;
    case EACCES:
    case EPERM:
    case EROFS: return TRP_EPERM;
    case ENOMEM: return TRP_ENOMEM;
    default: return TRP_EIO;
    }
}

int trp_err_sys(trp_err *err, int code, int sys_errno, const char *fmt, ...)
{
    code = status_from_errno(code, sys_errno);
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof err->msg)
            snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(sys_errno));
        err->code = code;
        err->sys_errno = sys_errno;
    }
    return code;
}

void trp_err_prefix(trp_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[256], old[TRP_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3)
        n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 2;
    size_t m = strnlen(old, room - 1);
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
}

int trp_exit_code(int status)
{
    switch (status) {
    case TRP_OK: return 0;
    case TRP_ECORRUPT:
    case TRP_ECONFLICT: return 1;
    case TRP_EINVAL: return EX_USAGE;
    case TRP_ENOENT: return EX_NOINPUT;
    case TRP_EFORMAT:
    case TRP_ETOOBIG:
    case TRP_ERANGE: return EX_DATAERR;
    case TRP_EIO:
    case TRP_ENOSPC: return EX_IOERR;
    case TRP_EPERM: return EX_NOPERM;
    case TRP_ELOCKED:
    case TRP_EUNAVAIL: return EX_TEMPFAIL;
    case TRP_ECONFIG: return EX_CONFIG;
    case TRP_ENOMEM: return EX_OSERR;
    default: return EX_SOFTWARE;
    }
}

const char *trp_status_name(int status)
{
    static const char *const names[] = {
        "ok", "invalid", "missing", "format", "corrupt", "io", "nospace", "permission",
        "locked", "too-big", "conflict", "config", "unavailable", "nomem", "state", "range",
    };
    if (status < 0 || (size_t)status >= sizeof names / sizeof names[0])
        return "unknown";
    return names[status];
}

const char *trp_version(void) { return TRP_VERSION; }
