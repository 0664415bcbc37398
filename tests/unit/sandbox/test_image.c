/*
 * Unit tests for image resolution: the default skeleton (built in a temp run folder), registered
 * images, rootfs folders given by path, and the errors for images that do not exist.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "co_alloc.h"
#include "sbx.h"
#include "sbx_image.h"

static char tmp[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/sbx-image-test-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void
rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
teardown(void **state)
{
    (void)state;
    rm_rf(tmp);
    unsetenv("CACHEOUT_RUN_DIR");
    unsetenv("CACHEOUT_IMAGE_DIR");
    return 0;
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = co_xmalloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
test_default_skeleton(void **state)
{
    (void)state;
    setenv("CACHEOUT_RUN_DIR", tmp, 1);
    struct sbx_image img;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_image_resolve("default", &img, &err), 0);
    assert_non_null(strstr(img.root, tmp));
    /* /usr is always bound, read-only at run time; the rest follows the host's layout. */
    assert_true(img.n_binds >= 1);
    assert_string_equal(img.bind_src[0], "/usr");
    assert_string_equal(img.bind_dst[0], "usr");
    char p[PATH_MAX + 64];
    static const char *const dirs[] = {"proc", "dev", "tmp", "work", "etc", "usr"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", img.root, dirs[i]);
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
    }
    /* The generated /etc: the job users, localhost, no resolver, the host's linker cache. */
    snprintf(p, sizeof(p), "%s/etc/passwd", img.root);
    char *pw = slurp(p);
    assert_non_null(pw);
    char line[128];
    snprintf(line, sizeof(line), "job0:x:%u:%u:", SBX_UID_BASE, SBX_UID_BASE);
    assert_non_null(strstr(pw, line));
    snprintf(line, sizeof(line), "job%u:x:%u:", SBX_MAX_SLOTS - 1,
             SBX_UID_BASE + SBX_MAX_SLOTS - 1);
    assert_non_null(strstr(pw, line));
    assert_null(strstr(pw, "root:x:0:0:root:/root:/bin/bash"));
    free(pw);
    snprintf(p, sizeof(p), "%s/etc/resolv.conf", img.root);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/etc/shadow", img.root);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/etc/hosts", img.root);
    char *hosts = slurp(p);
    assert_non_null(strstr(hosts, "127.0.0.1"));
    free(hosts);
    /* Merged-/usr hosts: /bin is the same link in the skeleton. */
    struct stat hs;
    if (lstat("/bin", &hs) == 0 && S_ISLNK(hs.st_mode)) {
        char t[64] = "";
        snprintf(p, sizeof(p), "%s/bin", img.root);
        assert_true(readlink(p, t, sizeof(t) - 1) > 0);
        assert_string_equal(t, "usr/bin");
    }
    /* Resolving again uses the same prepared skeleton. */
    struct sbx_image again;
    assert_int_equal(sbx_image_resolve(NULL, &again, &err), 0);
    assert_string_equal(again.root, img.root);
}

static void
test_registered_and_path_images(void **state)
{
    (void)state;
    char dir[128], img_dir[160];
    snprintf(dir, sizeof(dir), "%s/images", tmp);
    snprintf(img_dir, sizeof(img_dir), "%s/py", dir);
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_mkdir_p(img_dir, 0755, &err), 0);
    setenv("CACHEOUT_IMAGE_DIR", dir, 1);
    struct sbx_image img;
    assert_int_equal(sbx_image_resolve("py", &img, &err), 0);
    assert_string_equal(img.root, img_dir);
    assert_int_equal(img.n_binds, 0);
    /* The mount points were created in the image. */
    char p[256];
    snprintf(p, sizeof(p), "%s/work", img_dir);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/proc", img_dir);
    assert_int_equal(access(p, F_OK), 0);

    /* The same folder by absolute path. */
    assert_int_equal(sbx_image_resolve(img_dir, &img, &err), 0);
    assert_string_equal(img.root, img_dir);
}

static void
test_missing_images(void **state)
{
    (void)state;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/images", tmp);
    setenv("CACHEOUT_IMAGE_DIR", dir, 1);
    struct sbx_image img;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_image_resolve("nope", &img, &err), -1);
    assert_int_equal(err.code, CO_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "'nope'"));
    assert_int_equal(sbx_image_resolve("/nonexistent/rootfs", &img, &err), -1);
    assert_int_equal(err.code, CO_E_NOTFOUND);
    /* A file is not an image; neither is the host root. */
    char f[128];
    snprintf(f, sizeof(f), "%s/file", tmp);
    int fd = open(f, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(sbx_image_resolve(f, &img, &err), -1);
    assert_int_equal(sbx_image_resolve("/", &img, &err), -1);
    /* Names that could escape the image folder are refused before any lookup. */
    assert_int_equal(sbx_image_resolve("../etc", &img, &err), -1);
    assert_int_equal(err.code, CO_E_INVAL);
    assert_int_equal(sbx_image_resolve(".hidden", &img, &err), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_skeleton, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registered_and_path_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_images, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
