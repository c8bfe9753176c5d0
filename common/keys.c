/*  common/keys.c - CURVE key pairs and key files (see keys.h).
 *
 *  Key material comes from libzmq (zmq_curve_keypair, which uses
 *  libsodium's random source) and Z85 conversion too; this file adds the
 *  file format, the permission rules and the fingerprint. SHA-256 is
 *  written out here from FIPS 180-4 so that the fingerprint needs no
 *  library beyond libzmq. Secret bytes pass through stack buffers that are
 *  wiped before each function returns.
 */
#include "common/keys.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define S_PATH_MAX 4096

/* ---- SHA-256 ---------------------------------------------------------- */

static const uint32_t s_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu,
    0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u, 0xd807aa98u, 0x12835b01u,
    0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u,
    0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu,
    0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u,
    0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u,
    0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u,
    0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u, 0x1e376c08u,
    0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu,
    0x682e6ff3u, 0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

static uint32_t
s_ror(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

/* Process one 64-byte block into the state h[8]. */
static void
s_sha256_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = s_ror(w[i - 15], 7) ^ s_ror(w[i - 15], 18) ^
                      (w[i - 15] >> 3);
        uint32_t s1 = s_ror(w[i - 2], 17) ^ s_ror(w[i - 2], 19) ^
                      (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    uint32_t e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (s_ror(e, 6) ^ s_ror(e, 11) ^ s_ror(e, 25)) +
                      ((e & f) ^ (~e & g)) + s_k[i] + w[i];
        uint32_t t2 = (s_ror(a, 2) ^ s_ror(a, 13) ^ s_ror(a, 22)) +
                      ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void
tw_sha256(const void *data, size_t len, uint8_t out[32])
{
    uint32_t h[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                     0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    const uint8_t *p = data;
    size_t left = len;
    while (left >= 64) {
        s_sha256_block(h, p);
        p += 64;
        left -= 64;
    }
    /* The tail, a 1 bit, zeros, and the length in bits (big-endian) in
     * the last 8 bytes of one or two final blocks. */
    uint8_t tail[128];
    memset(tail, 0, sizeof tail);
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tlen = left + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) {
        tail[tlen - 1 - i] = (uint8_t)(bits >> (8 * i));
    }
    s_sha256_block(h, tail);
    if (tlen == 128) {
        s_sha256_block(h, tail + 64);
    }
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

/* ---- keys ------------------------------------------------------------- */

int
tw_keys_available(void)
{
    return zmq_has("curve") ? 1 : 0;
}

void
tw_keys_z85(const uint8_t key[TW_KEY_LEN], char *out)
{
    zmq_z85_encode(out, key, TW_KEY_LEN);
}

int
tw_keys_from_z85(const char *z85, size_t len, uint8_t key[TW_KEY_LEN])
{
    char buf[TW_KEY_Z85_LEN + 1];
    if (len != TW_KEY_Z85_LEN) {
        return TW_EINVAL;
    }
    memcpy(buf, z85, len);
    buf[len] = '\0';
    int rc = zmq_z85_decode(key, buf) ? 0 : TW_EINVAL;
    explicit_bzero(buf, sizeof buf);
    return rc;
}

void
tw_keys_fingerprint(const uint8_t pub[TW_KEY_LEN], char *out)
{
    uint8_t d[32];
    tw_sha256(pub, TW_KEY_LEN, d);
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 10; i++) {
        *o++ = hex[d[i] >> 4];
        *o++ = hex[d[i] & 15];
        if (i % 2 == 1 && i < 9) {
            *o++ = ':';
        }
    }
    *o = '\0';
}

void
tw_keys_wipe(tw_keypair_t *kp)
{
    explicit_bzero(kp->sec, sizeof kp->sec);
    kp->has_secret = 0;
}

/* The public key of secret key `sec`. Returns 0 or TW_EINVAL. */
static int
s_derive_public(const uint8_t sec[TW_KEY_LEN], uint8_t pub[TW_KEY_LEN])
{
    char zs[TW_KEY_Z85_LEN + 1], zp[TW_KEY_Z85_LEN + 1];
    tw_keys_z85(sec, zs);
    int rc = zmq_curve_public(zp, zs) == 0 ? 0 : TW_EINVAL;
    explicit_bzero(zs, sizeof zs);
    if (rc == 0) {
        rc = tw_keys_from_z85(zp, TW_KEY_Z85_LEN, pub);
    }
    return rc;
}

int
tw_keys_generate(tw_keypair_t *kp)
{
    char zp[TW_KEY_Z85_LEN + 1], zs[TW_KEY_Z85_LEN + 1];
    memset(kp, 0, sizeof *kp);
    if (!tw_keys_available() || zmq_curve_keypair(zp, zs) != 0) {
        return TW_EINVAL;
    }
    int rc = tw_keys_from_z85(zp, TW_KEY_Z85_LEN, kp->pub);
    if (rc == 0) {
        rc = tw_keys_from_z85(zs, TW_KEY_Z85_LEN, kp->sec);
    }
    explicit_bzero(zs, sizeof zs);
    kp->has_secret = rc == 0;
    if (rc != 0) {
        tw_keys_wipe(kp);
    }
    return rc;
}

static int
s_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

int
tw_keys_parse(const char *text, size_t len, tw_keypair_t *kp, char *err,
              size_t errlen)
{
    int have_pub = 0, have_sec = 0;
    uint8_t pub[TW_KEY_LEN];
    memset(kp, 0, sizeof *kp);
    size_t pos = 0;
    int line = 0, rc = 0;
    while (rc == 0 && pos < len) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        line++;
        while (n > 0 && s_space(*s)) {
            s++;
            n--;
        }
        while (n > 0 && s_space(s[n - 1])) {
            n--;
        }
        if (n == 0 || *s == '#') {
            continue;
        }
        size_t kl = 0;
        while (kl < n && !s_space(s[kl])) {
            kl++;
        }
        const char *v = s + kl;
        size_t vl = n - kl;
        while (vl > 0 && s_space(*v)) {
            v++;
            vl--;
        }
        int is_pub = kl == 10 && memcmp(s, "public-key", 10) == 0;
        int is_sec = kl == 10 && memcmp(s, "secret-key", 10) == 0;
        if (!is_pub && !is_sec) {
            snprintf(err, errlen,
                     "line %d: expected 'public-key KEY' or 'secret-key KEY'",
                     line);
            rc = TW_EINVAL;
        } else if (is_pub ? have_pub : have_sec) {
            snprintf(err, errlen, "line %d: a second %.*s", line, (int)kl,
                     s);
            rc = TW_EINVAL;
        } else if (tw_keys_from_z85(v, vl, is_pub ? pub : kp->sec) != 0) {
            snprintf(err, errlen,
                     "line %d: the %.*s is not %d characters of Z85", line,
                     (int)kl, s, TW_KEY_Z85_LEN);
            rc = TW_EINVAL;
        } else if (is_pub) {
            have_pub = 1;
        } else {
            have_sec = 1;
        }
    }
    if (rc == 0 && !have_pub && !have_sec) {
        snprintf(err, errlen, "no public-key or secret-key line");
        rc = TW_EINVAL;
    }
    if (rc == 0 && have_sec) {
        rc = s_derive_public(kp->sec, kp->pub);
        if (rc != 0) {
            snprintf(err, errlen, "the secret key is not usable");
        } else if (have_pub && memcmp(pub, kp->pub, TW_KEY_LEN) != 0) {
            snprintf(err, errlen,
                     "the public key does not belong to the secret key");
            rc = TW_EINVAL;
        }
        kp->has_secret = rc == 0;
    } else if (rc == 0) {
        memcpy(kp->pub, pub, TW_KEY_LEN);
    }
    if (rc != 0) {
        tw_keys_wipe(kp);
    }
    return rc;
}

int
tw_keys_read(const char *path, int want_secret, tw_keypair_t *kp, char *err,
             size_t errlen)
{
    char buf[TW_KEY_FILE_MAX];
    char why[160];
    memset(kp, 0, sizeof *kp);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open key file %s: %s", path,
                 strerror(e));
        return e == ENOENT ? TW_ENOENT : e == EACCES ? TW_EPERM : TW_EIO;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "key file %s is not a regular file", path);
        rc = TW_EINVAL;
    } else if (st.st_size > TW_KEY_FILE_MAX - 1) {
        snprintf(err, errlen, "key file %s is larger than %d bytes", path,
                 TW_KEY_FILE_MAX - 1);
        rc = TW_EINVAL;
    }
    size_t len = 0;
    while (rc == 0) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "cannot read key file %s: %s", path,
                     strerror(errno));
            rc = TW_EIO;
        } else if (n == 0 || len + (size_t)n >= sizeof buf - 1) {
            len += (size_t)n;
            break;
        } else {
            len += (size_t)n;
        }
    }
    close(fd);
    if (rc == 0 && tw_keys_parse(buf, len, kp, why, sizeof why) != 0) {
        snprintf(err, errlen, "key file %s: %s", path, why);
        rc = TW_EINVAL;
    }
    if (rc == 0 && want_secret && !kp->has_secret) {
        snprintf(err, errlen,
                 "key file %s holds no secret key (give the .key file, not "
                 "the .pub)",
                 path);
        rc = TW_EINVAL;
    } else if (rc == 0 && want_secret && (st.st_mode & 077)) {
        snprintf(err, errlen,
                 "secret key file %s has mode %04o: it must be readable by "
                 "its owner only (chmod 600 %s)",
                 path, (unsigned)(st.st_mode & 07777), path);
        rc = TW_EPERM;
    }
    explicit_bzero(buf, sizeof buf);
    if (rc != 0) {
        tw_keys_wipe(kp);
    }
    return rc;
}

/* ---- writing ---------------------------------------------------------- */

/* Create `path` exclusively with `mode` and write `text`. Returns 0 or a
 * negative errno; on failure the file does not exist. */
static int
s_write_new(const char *path, mode_t mode, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  mode);
    if (fd < 0) {
        return -errno;
    }
    int rc = fchmod(fd, mode) == 0 ? 0 : -errno;
    size_t off = 0;
    while (rc == 0 && off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
        } else {
            off += (size_t)n;
        }
    }
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc != 0) {
        unlink(path);
    }
    return rc;
}

int
tw_keys_write(const char *base, const tw_keypair_t *kp, char *err,
              size_t errlen)
{
    size_t bl = base ? strlen(base) : 0;
    if (bl == 0 || bl + 5 > S_PATH_MAX) {
        snprintf(err, errlen, "a key name must be 1 to %d characters",
                 S_PATH_MAX - 5);
        return TW_EINVAL;
    }
    if (!kp->has_secret) {
        snprintf(err, errlen, "no secret key to write");
        return TW_EINVAL;
    }
    char kpath[S_PATH_MAX], ppath[S_PATH_MAX];
    snprintf(kpath, sizeof kpath, "%s.key", base);
    snprintf(ppath, sizeof ppath, "%s.pub", base);
    struct stat st;
    const char *taken = lstat(kpath, &st) == 0   ? kpath
                        : lstat(ppath, &st) == 0 ? ppath
                                                 : NULL;
    if (taken) {
        snprintf(err, errlen, "%s already exists: refusing to overwrite it",
                 taken);
        return TW_EEXIST;
    }
    /* The name in the comments: the last path component, printable. */
    const char *slash = strrchr(base, '/');
    char name[65];
    snprintf(name, sizeof name, "%s", slash ? slash + 1 : base);
    for (char *p = name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '"') {
            *p = '?';
        }
    }
    char zp[TW_KEY_Z85_LEN + 1], zs[TW_KEY_Z85_LEN + 1], fp[TW_KEY_FP_LEN];
    tw_keys_z85(kp->pub, zp);
    tw_keys_z85(kp->sec, zs);
    tw_keys_fingerprint(kp->pub, fp);
    char text[512];
    int n = snprintf(text, sizeof text,
                     "# taskwheel CURVE secret key \"%s\"\n"
                     "# Keep this file private (mode 0600). Give the .pub "
                     "file to the broker.\n"
                     "# fingerprint %s\n"
                     "public-key  %s\n"
                     "secret-key  %s\n",
                     name, fp, zp, zs);
    int rc = s_write_new(kpath, 0600, text, (size_t)n);
    explicit_bzero(zs, sizeof zs);
    explicit_bzero(text, sizeof text);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create %s: %s", kpath, strerror(-rc));
        return rc == -EEXIST ? TW_EEXIST : TW_EIO;
    }
    n = snprintf(text, sizeof text,
                 "# taskwheel CURVE public key \"%s\"\n"
                 "# fingerprint %s\n"
                 "public-key  %s\n",
                 name, fp, zp);
    rc = s_write_new(ppath, 0644, text, (size_t)n);
    if (rc != 0) {
        unlink(kpath);
        snprintf(err, errlen, "cannot create %s: %s", ppath, strerror(-rc));
        return rc == -EEXIST ? TW_EEXIST : TW_EIO;
    }
    return 0;
}

/* ---- sockets ---------------------------------------------------------- */

int
tw_curve_client_load(tw_curve_client_t *c, const char *secret_path,
                     const char *server_path, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    int rc = tw_keys_read(secret_path, 1, &c->self, err, errlen);
    if (rc != 0) {
        return rc;
    }
    tw_keypair_t server;
    rc = tw_keys_read(server_path, 0, &server, err, errlen);
    if (rc != 0) {
        tw_keys_wipe(&c->self);
        return rc;
    }
    memcpy(c->server, server.pub, TW_KEY_LEN);
    tw_keys_wipe(&server);
    return 0;
}

int
tw_curve_client_apply(void *sock, const tw_curve_client_t *c)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server, TW_KEY_LEN) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->self.pub, TW_KEY_LEN) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->self.sec, TW_KEY_LEN)) {
        return -errno;
    }
    return 0;
}

int
tw_curve_server_apply(void *sock, const tw_keypair_t *kp, const char *domain)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp->sec, TW_KEY_LEN) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain))) {
        return -errno;
    }
    return 0;
}
