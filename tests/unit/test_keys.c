/*  tests/unit/test_keys.c - CURVE key pairs and key files.
 *
 *  SHA-256 against the FIPS 180-4 examples and block-boundary lengths
 *  (the fingerprint rests on it); Z85 round trips; the key file parser on
 *  good files and on every way a file can be wrong; and the file life
 *  cycle in a private temp directory: generate, write (modes 0600 and
 *  0644), refuse to overwrite, read back, refuse a secret file others can
 *  read, refuse a .pub where a secret is wanted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/keys.h"

static char s_dir[64];

static int
s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/tw-test-keys-XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int
s_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
s_hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", d[i]);
    }
}

static void
s_check_sha(const void *data, size_t len, const char *want)
{
    uint8_t d[32];
    char hex[65];
    tw_sha256(data, len, d);
    s_hex(d, 32, hex);
    assert_string_equal(hex, want);
}

static void
test_sha256(void **state)
{
    (void)state;
    s_check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49"
                       "5991b7852b855");
    s_check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb"
                          "410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnop"
                      "nopq";
    s_check_sha(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45"
                                  "964ff2167f6ecedd419db06c1");
    /* 55, 56 and 64 bytes: the padding fits, just misses, and a whole
     * block of padding follows. */
    uint8_t seq[64];
    for (int i = 0; i < 64; i++) {
        seq[i] = (uint8_t)i;
    }
    s_check_sha(seq, 55, "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0"
                         "d45ae59b598b59");
    s_check_sha(seq, 56, "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59"
                         "de82a60895f562");
    s_check_sha(seq, 64, "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c"
                         "447cd1d9151108");
    char *million = malloc(1000000);
    assert_non_null(million);
    memset(million, 'a', 1000000);
    s_check_sha(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a4"
                                  "8a497200e046d39ccc7112cd0");
    free(million);
}

static void
test_fingerprint(void **state)
{
    (void)state;
    uint8_t zero[TW_KEY_LEN] = {0};
    char fp[TW_KEY_FP_LEN];
    tw_keys_fingerprint(zero, fp);
    assert_string_equal(fp, "6668:7aad:f862:bd77:6c8f");
    assert_int_equal(strlen(fp), TW_KEY_FP_LEN - 1);
}

static void
test_generate_and_z85(void **state)
{
    (void)state;
    if (!tw_keys_available()) {
        skip();
    }
    tw_keypair_t a, b;
    assert_int_equal(tw_keys_generate(&a), 0);
    assert_int_equal(tw_keys_generate(&b), 0);
    assert_true(a.has_secret);
    assert_memory_not_equal(a.pub, b.pub, TW_KEY_LEN);
    char z[TW_KEY_Z85_LEN + 1];
    tw_keys_z85(a.pub, z);
    assert_int_equal(strlen(z), TW_KEY_Z85_LEN);
    uint8_t back[TW_KEY_LEN];
    assert_int_equal(tw_keys_from_z85(z, TW_KEY_Z85_LEN, back), 0);
    assert_memory_equal(back, a.pub, TW_KEY_LEN);
    assert_int_equal(tw_keys_from_z85(z, 39, back), TW_EINVAL);
    char bad[TW_KEY_Z85_LEN + 1];
    memcpy(bad, z, sizeof bad);
    bad[7] = '~'; /* not in the Z85 alphabet */
    assert_int_equal(tw_keys_from_z85(bad, TW_KEY_Z85_LEN, back), TW_EINVAL);
    tw_keys_wipe(&a);
    assert_false(a.has_secret);
    uint8_t zero[TW_KEY_LEN] = {0};
    assert_memory_equal(a.sec, zero, TW_KEY_LEN);
}

static void
test_parse(void **state)
{
    (void)state;
    if (!tw_keys_available()) {
        skip();
    }
    tw_keypair_t kp, other, got;
    assert_int_equal(tw_keys_generate(&kp), 0);
    assert_int_equal(tw_keys_generate(&other), 0);
    char zp[41], zs[41], zo[41];
    tw_keys_z85(kp.pub, zp);
    tw_keys_z85(kp.sec, zs);
    tw_keys_z85(other.pub, zo);
    char text[512], err[256];

    /* Public only, with comments, blank lines, tabs and CRLF. */
    snprintf(text, sizeof text, "# a comment\r\n\n\tpublic-key\t%s \r\n", zp);
    assert_int_equal(tw_keys_parse(text, strlen(text), &got, err, sizeof err),
                     0);
    assert_false(got.has_secret);
    assert_memory_equal(got.pub, kp.pub, TW_KEY_LEN);

    /* Secret and public; and a secret alone derives the public key. */
    snprintf(text, sizeof text, "public-key %s\nsecret-key %s\n", zp, zs);
    assert_int_equal(tw_keys_parse(text, strlen(text), &got, err, sizeof err),
                     0);
    assert_true(got.has_secret);
    assert_memory_equal(got.sec, kp.sec, TW_KEY_LEN);
    snprintf(text, sizeof text, "secret-key %s", zs); /* no final newline */
    assert_int_equal(tw_keys_parse(text, strlen(text), &got, err, sizeof err),
                     0);
    assert_memory_equal(got.pub, kp.pub, TW_KEY_LEN);

    /* A public key that is not the secret's. */
    snprintf(text, sizeof text, "public-key %s\nsecret-key %s\n", zo, zs);
    assert_int_equal(tw_keys_parse(text, strlen(text), &got, err, sizeof err),
                     TW_EINVAL);
    assert_non_null(strstr(err, "does not belong"));
    assert_false(got.has_secret);

    const char *bad[] = {
        "",                              /* nothing */
        "# only a comment\n",            /* nothing either */
        "public-key\n",                  /* no value */
        "public-key abc\n",              /* too short */
        "name alice\n",                  /* unknown keyword */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(tw_keys_parse(bad[i], strlen(bad[i]), &got, err,
                                       sizeof err),
                         TW_EINVAL);
    }
    snprintf(text, sizeof text, "public-key %s\npublic-key %s\n", zp, zp);
    assert_int_equal(tw_keys_parse(text, strlen(text), &got, err, sizeof err),
                     TW_EINVAL);
    assert_non_null(strstr(err, "line 2"));
    snprintf(text, sizeof text, "public-key %s extra\n", zp);
    assert_int_equal(tw_keys_parse(text, strlen(text), &got, err, sizeof err),
                     TW_EINVAL);
    tw_keys_wipe(&kp);
    tw_keys_wipe(&other);
}

static mode_t
s_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void
test_files(void **state)
{
    (void)state;
    if (!tw_keys_available()) {
        skip();
    }
    char base[128], kpath[160], ppath[160], err[512];
    snprintf(base, sizeof base, "%s/alice", s_dir);
    snprintf(kpath, sizeof kpath, "%s.key", base);
    snprintf(ppath, sizeof ppath, "%s.pub", base);
    tw_keypair_t kp, got;
    assert_int_equal(tw_keys_generate(&kp), 0);
    mode_t old = umask(0); /* the modes must not depend on the umask */
    assert_int_equal(tw_keys_write(base, &kp, err, sizeof err), 0);
    umask(old);
    assert_int_equal(s_mode(kpath), 0600);
    assert_int_equal(s_mode(ppath), 0644);

    /* Never overwritten, whichever of the two exists. */
    tw_keypair_t kp2;
    assert_int_equal(tw_keys_generate(&kp2), 0);
    assert_int_equal(tw_keys_write(base, &kp2, err, sizeof err), TW_EEXIST);
    assert_non_null(strstr(err, "refusing to overwrite"));
    assert_int_equal(tw_keys_read(kpath, 1, &got, err, sizeof err), 0);
    assert_memory_equal(got.sec, kp.sec, TW_KEY_LEN);
    char base2[128], k2[160];
    snprintf(base2, sizeof base2, "%s/bob", s_dir);
    snprintf(k2, sizeof k2, "%s/bob.pub", s_dir);
    FILE *f = fopen(k2, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(tw_keys_write(base2, &kp2, err, sizeof err), TW_EEXIST);
    snprintf(k2, sizeof k2, "%s/bob.key", s_dir);
    assert_int_not_equal(access(k2, F_OK), 0); /* nothing left behind */

    /* Read back: the .pub as a public key, not as a secret one. */
    assert_int_equal(tw_keys_read(ppath, 0, &got, err, sizeof err), 0);
    assert_false(got.has_secret);
    assert_memory_equal(got.pub, kp.pub, TW_KEY_LEN);
    assert_int_equal(tw_keys_read(ppath, 1, &got, err, sizeof err),
                     TW_EINVAL);
    assert_non_null(strstr(err, "no secret key"));

    /* A secret others can read is refused. */
    assert_int_equal(chmod(kpath, 0640), 0);
    assert_int_equal(tw_keys_read(kpath, 1, &got, err, sizeof err), TW_EPERM);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(kpath, 0600), 0);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/nobody.key", s_dir);
    assert_int_equal(tw_keys_read(missing, 1, &got, err, sizeof err),
                     TW_ENOENT);
    assert_int_equal(tw_keys_read(s_dir, 0, &got, err, sizeof err),
                     TW_EINVAL); /* a directory */

    /* The client bundle: own secret plus the server's public key, from a
     * .pub or from a .key alike. */
    tw_curve_client_t c;
    assert_int_equal(tw_curve_client_load(&c, kpath, ppath, err, sizeof err),
                     0);
    assert_memory_equal(c.server, kp.pub, TW_KEY_LEN);
    assert_int_equal(tw_curve_client_load(&c, kpath, kpath, err, sizeof err),
                     0);
    assert_memory_equal(c.server, kp.pub, TW_KEY_LEN);
    assert_int_equal(tw_curve_client_load(&c, ppath, ppath, err, sizeof err),
                     TW_EINVAL);
    tw_keys_wipe(&c.self);
    tw_keys_wipe(&kp);
    tw_keys_wipe(&kp2);
    tw_keys_wipe(&got);

    assert_int_equal(tw_keys_write("", &kp, err, sizeof err), TW_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_generate_and_z85),
        cmocka_unit_test(test_parse),
        cmocka_unit_test_setup_teardown(test_files, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
