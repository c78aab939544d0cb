/* test_base.c: status codes map to the documented sysexits(3) statuses. */
#include "../check.h"
#include "trp.h"

#include <errno.h>
#include <sysexits.h>

static void exit_codes_follow_sysexits(void)
{
    CHECK(trp_exit_code(TRP_OK) == 0);
    CHECK(trp_exit_code(TRP_ECORRUPT) == 1);
    CHECK(trp_exit_code(TRP_EINVAL) == EX_USAGE);
    CHECK(trp_exit_code(TRP_EFORMAT) == EX_DATAERR);
    CHECK(trp_exit_code(TRP_ENOENT) == EX_NOINPUT);
    CHECK(trp_exit_code(TRP_EIO) == EX_IOERR);
    CHECK(trp_exit_code(TRP_ELOCKED) == EX_TEMPFAIL);
    CHECK(trp_exit_code(TRP_ECONFIG) == EX_CONFIG);
}

static void errno_maps_to_status(void)
{
    trp_err e;
    CHECK(trp_err_sys(&e, TRP_EIO, ENOSPC, "write %s", "x.seg") == TRP_ENOSPC);
    CHECK(strstr(e.msg, "x.seg") != NULL);
    CHECK(trp_err_sys(&e, TRP_EIO, EROFS, "open") == TRP_EPERM);
    CHECK(trp_err_sys(&e, TRP_EIO, ENOENT, "open") == TRP_ENOENT);
    trp_err_prefix(&e, "dir %s", "d");
    CHECK(strncmp(e.msg, "dir d: open", 11) == 0);
}

int main(void)
{
    RUN(exit_codes_follow_sysexits);
    RUN(errno_maps_to_status);
    return check_done();
}
