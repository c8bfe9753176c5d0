"""CURVE from Python: key files as `taskwheel keygen` writes them, a broker
that admits only listed keys, and the same checks as common/keys.c."""

import os
import shutil

import pytest

import taskwheel
from taskwheel import keys
from tw_cluster import wait_workers


def keygen(cluster, d, name):
    r = cluster.cli("keygen", os.path.join(d, name))
    assert r.returncode == 0, r.stderr
    return os.path.join(d, name + ".key"), os.path.join(d, name + ".pub")


@pytest.fixture
def secure(cluster, tmp_path):
    d = str(tmp_path / "keys")
    os.makedirs(d)
    for role in ("clients", "workers", "monitors"):
        os.makedirs(os.path.join(d, role))
    bkey, bpub = keygen(cluster, d, "broker")
    wkey, wpub = keygen(cluster, d, "w1")
    ckey, cpub = keygen(cluster, d, "me")
    shutil.copy(wpub, os.path.join(d, "workers"))
    shutil.copy(cpub, os.path.join(d, "clients"))
    shutil.copy(cpub, os.path.join(d, "monitors"))
    b = cluster.broker("--curve-secret", bkey,
                       "--clients-keys", os.path.join(d, "clients"),
                       "--workers-keys", os.path.join(d, "workers"),
                       "--monitors-keys", os.path.join(d, "monitors"),
                       ready=False)
    cluster.worker(b, "--curve-secret", wkey, "--broker-key", bpub)
    return b, d, ckey, bpub


def test_curve_client_submits_and_watches(secure):
    b, d, ckey, bpub = secure
    with taskwheel.Client(b.frontend, status=b.status, curve_secret=ckey,
                          broker_key=bpub, timeout=10) as c:
        wait_workers(c, 1)
        assert c.submit("echo", 1).result(10) == [1]
        with c.events("task.", timeout=30) as ev:
            assert next(ev).topic == "snapshot"
            h = c.submit("noop")
            assert any(e.data.get("id") == h.wait_id() for e in ev)


def test_curve_from_environment(secure, monkeypatch):
    b, d, ckey, bpub = secure
    monkeypatch.setenv("TASKWHEEL_CURVE_SECRET", ckey)
    monkeypatch.setenv("TASKWHEEL_BROKER_KEY", bpub)
    with taskwheel.Client(b.frontend, timeout=10) as c:
        wait_workers(c, 1)
        assert c.submit("echo", 2).result(10) == [2]


def test_curve_unlisted_key_is_unreachable(cluster, secure):
    b, d, ckey, bpub = secure
    other, _ = keygen(cluster, d, "stranger")
    with taskwheel.Client(b.frontend, curve_secret=other, broker_key=bpub,
                          timeout=0.5) as c:
        with pytest.raises(taskwheel.Unreachable):
            c.ping()
    with taskwheel.Client(b.frontend, timeout=0.5) as plain:
        with pytest.raises(taskwheel.Unreachable):
            plain.ping()


def test_key_file_rules(cluster, tmp_path):
    d = str(tmp_path)
    key, pub = keygen(cluster, d, "k")
    kp = keys.read(key, want_secret=True)
    assert kp.secret is not None and len(kp.public) == 40
    assert keys.read(pub).public == kp.public
    fp = [ln for ln in open(pub) if ln.startswith("# fingerprint")][0]
    assert fp.split()[-1] == kp.fingerprint
    with pytest.raises(keys.KeyFileError, match="holds no secret key"):
        keys.read(pub, want_secret=True)
    os.chmod(key, 0o644)
    with pytest.raises(keys.KeyFileError, match="chmod 600"):
        keys.read(key, want_secret=True)
    bad = tmp_path / "bad.key"
    bad.write_text("# comment\nprivate-key abc\n")
    with pytest.raises(keys.KeyFileError, match="line 2: expected"):
        keys.read(str(bad))
    bad.write_text("public-key tooshort\n")
    with pytest.raises(keys.KeyFileError, match="not 40 characters"):
        keys.read(str(bad))
    two = open(pub).read() + "public-key " + kp.public.decode() + "\n"
    bad.write_text(two)
    with pytest.raises(keys.KeyFileError, match="a second public-key"):
        keys.read(str(bad))
    with pytest.raises(keys.KeyFileError, match="cannot open"):
        keys.read(str(tmp_path / "missing.key"))
    other = keys.parse("public-key " + keys.read(keygen(
        cluster, d, "o")[1]).public.decode())
    mismatch = tmp_path / "mm.key"
    mismatch.write_text("public-key %s\nsecret-key %s\n"
                        % (other.public.decode(), kp.secret.decode()))
    with pytest.raises(keys.KeyFileError, match="does not belong"):
        keys.parse(mismatch.read_text())
