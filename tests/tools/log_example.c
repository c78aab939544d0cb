/* log_example.c: print the generated worked example of man/trp-log.5
 * (see tests/unit/log_example.h). Usage: log_example SCRATCH_DIR */
#include "../unit/log_example.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: log_example SCRATCH_DIR (must not exist)\n");
        return 64;
    }
    char *t = log_example_text(argv[1]);
    if (!t)
        return 1;
    fputs(t, stdout);
    free(t);
    return 0;
}
