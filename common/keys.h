/*  common/keys.h - CURVE key pairs: generate, store, read, fingerprint.
 *
 *  taskwheel authenticates and encrypts its traffic with ZeroMQ's CURVE
 *  mechanism (CurveZMQ: Curve25519 keys, one pair per process). This module
 *  is everything a process does with keys before ZeroMQ takes them: make a
 *  pair, write it as two text files, read them back, and set them on a
 *  socket. It knows no broker, worker or client; the broker's checks of who
 *  may connect live in broker/state/auth.c.
 *
 *  Key files are text. Blank lines and lines starting with '#' are
 *  ignored; every other line is a keyword, white space and a key in Z85
 *  (40 characters, ZeroMQ's text form of 32 bytes):
 *
 *      # taskwheel CURVE public key "alice"
 *      # fingerprint 19ce:b15e:a369:6338:914a
 *      public-key  :5D8Rl{LQDLD[>tHS.^Mv:wo!s8BgdTw!mfDmv+V
 *
 *  NAME.pub holds `public-key` only and may be copied anywhere. NAME.key
 *  holds `public-key` and `secret-key`, is created with mode 0600, and is
 *  refused when it can be read by anyone but its owner (as ssh does).
 *  Any other keyword is an error. A secret file without `public-key` is
 *  accepted (the public key is derived); one whose public key does not
 *  match its secret key is refused.
 *
 *  The fingerprint names a public key in logs: the first ten bytes of the
 *  SHA-256 digest of its 32 bytes, as five groups of four hex digits.
 *  Secret bytes are wiped (tw_keys_wipe) as soon as they are no longer
 *  needed. Thread-safe: no global state.
 */
#ifndef TW_KEYS_H
#define TW_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define TW_KEY_LEN 32     /* bytes of a Curve25519 key */
#define TW_KEY_Z85_LEN 40 /* characters of its Z85 text */
#define TW_KEY_FP_LEN 25  /* "xxxx:xxxx:xxxx:xxxx:xxxx" and a NUL */
#define TW_KEY_FILE_MAX 65536 /* larger key files are refused */

typedef struct {
    uint8_t pub[TW_KEY_LEN];
    uint8_t sec[TW_KEY_LEN];
    int has_secret; /* sec holds a secret key */
} tw_keypair_t;

/* What a connecting process (worker, client, monitor) needs: its own pair
 * and the broker's public key. */
typedef struct {
    tw_keypair_t self;
    uint8_t server[TW_KEY_LEN];
} tw_curve_client_t;

/* 1 if this libzmq was built with CURVE, else 0. */
int tw_keys_available(void);

/* Make a new key pair. Returns 0, or TW_EINVAL if libzmq has no CURVE. */
int tw_keys_generate(tw_keypair_t *kp);

/* Write `kp` as `base`.key (secret, mode 0600) and `base`.pub (public,
 * mode 0644), with comments naming the base name and the fingerprint.
 * Refuses to overwrite: returns TW_EEXIST, with nothing written, if either
 * file exists. Returns 0, TW_EEXIST, TW_EINVAL (no secret in `kp`, or a
 * base name that is empty or too long) or TW_EIO, with the reason in
 * `err`. On failure no file is left behind. */
int tw_keys_write(const char *base, const tw_keypair_t *kp, char *err,
                  size_t errlen);

/* Parse the text of a key file (see above). On 0, kp->pub is set and
 * kp->has_secret says whether the text held a secret key. Returns
 * TW_EINVAL with the reason (and line number) in `err` otherwise. */
int tw_keys_parse(const char *text, size_t len, tw_keypair_t *kp, char *err,
                  size_t errlen);

/* Read a key file. With `want_secret`, the file must hold a secret key and
 * be readable by its owner only. Returns 0, TW_ENOENT, TW_EPERM (mode too
 * open), TW_EINVAL (no secret key when one was wanted, bad content, too
 * large) or TW_EIO, with a reason naming the file in `err`. */
int tw_keys_read(const char *path, int want_secret, tw_keypair_t *kp,
                 char *err, size_t errlen);

/* Z85 text of a 32-byte key into out[TW_KEY_Z85_LEN + 1]. */
void tw_keys_z85(const uint8_t key[TW_KEY_LEN], char *out);

/* Decode `len` characters of Z85 into key. Returns 0, or TW_EINVAL when
 * `len` is not 40 or the text is not Z85. */
int tw_keys_from_z85(const char *z85, size_t len, uint8_t key[TW_KEY_LEN]);

/* The fingerprint of a public key into out[TW_KEY_FP_LEN]. */
void tw_keys_fingerprint(const uint8_t pub[TW_KEY_LEN], char *out);

/* SHA-256 of `len` bytes into out[32] (FIPS 180-4). */
void tw_sha256(const void *data, size_t len, uint8_t out[32]);

/* Overwrite the secret half of `kp` (and clear has_secret). */
void tw_keys_wipe(tw_keypair_t *kp);

/* Read a connecting process's keys: its secret key file and the broker's
 * public key file (a .key file also works there: only its public key is
 * used). Returns 0 or an error from tw_keys_read, with the reason in
 * `err`. */
int tw_curve_client_load(tw_curve_client_t *c, const char *secret_path,
                         const char *server_path, char *err, size_t errlen);

/* Make `sock` a CURVE client of the server whose key `c` holds. Call
 * before zmq_connect. Returns 0 or a negative errno. */
int tw_curve_client_apply(void *sock, const tw_curve_client_t *c);

/* Make `sock` a CURVE server with secret key `kp` whose ZAP requests name
 * `domain`. Call before zmq_bind. Returns 0 or a negative errno. */
int tw_curve_server_apply(void *sock, const tw_keypair_t *kp,
                          const char *domain);

#endif /* TW_KEYS_H */
