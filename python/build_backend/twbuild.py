"""twbuild - the PEP 517 build backend of the taskwheel Python package.

It packs ``taskwheel/`` into a pure-Python wheel (and the tree into an
sdist) with the standard library only, so that ``pip install ./python``
works offline: pip installs a backend's ``requires`` into an isolated
environment from the network, and this backend requires nothing. The
metadata comes from the ``[project]`` table of pyproject.toml (the few
keys used there: name, version, description, readme, requires-python,
dependencies, classifiers).

Hooks: build_wheel, build_sdist, build_editable (a .pth file pointing at
this tree), and the optional get_requires_* and prepare_metadata_* ones.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "taskwheel"


def _project():
    """The [project] table: str values and lists of str."""
    text = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
    m = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    table = m.group(1) if m else ""
    out = {}
    for key, value in re.findall(r'^([A-Za-z-]+)\s*=\s*(".*?"|\[.*?\])\s*$',
                                 table, re.M | re.S):
        if value.startswith("["):
            out[key] = re.findall(r'"([^"]*)"', value)
        else:
            out[key] = value[1:-1]
    return out


def _metadata():
    p = _project()
    lines = ["Metadata-Version: 2.1", "Name: " + p["name"],
             "Version: " + p["version"]]
    if p.get("description"):
        lines.append("Summary: " + p["description"])
    if p.get("requires-python"):
        lines.append("Requires-Python: " + p["requires-python"])
    for dep in p.get("dependencies", []):
        lines.append("Requires-Dist: " + dep)
    for c in p.get("classifiers", []):
        lines.append("Classifier: " + c)
    body = ""
    readme = os.path.join(ROOT, p.get("readme", "README.md"))
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        body = "\n" + open(readme, encoding="utf-8").read()
    return p, "\n".join(lines) + "\n" + body


def _dist_info(p):
    return "%s-%s.dist-info" % (p["name"], p["version"])


def _package_files():
    base = os.path.join(ROOT, PACKAGE)
    for d, dirs, files in os.walk(base):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for f in sorted(files):
            if f.endswith((".py", ".typed")):
                full = os.path.join(d, f)
                yield full, os.path.relpath(full, ROOT)


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
    return "%s,sha256=%s,%d" % (name, digest.rstrip(b"=").decode(),
                                len(data))


def _write_wheel(wheel_directory, entries):
    p, meta = _metadata()
    info = _dist_info(p)
    name = "%s-%s-py3-none-any.whl" % (p["name"], p["version"])
    wheel = ("Wheel-Version: 1.0\nGenerator: twbuild\n"
             "Root-Is-Purelib: true\nTag: py3-none-any\n")
    entries = list(entries) + [(info + "/METADATA", meta.encode()),
                               (info + "/WHEEL", wheel.encode())]
    record = [_record_line(n, d) for n, d in entries]
    record.append(info + "/RECORD,,")
    entries.append((info + "/RECORD", ("\n".join(record) + "\n").encode()))
    path = os.path.join(wheel_directory, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in entries:
            zi = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            z.writestr(zi, d)
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


get_requires_for_build_sdist = get_requires_for_build_wheel
get_requires_for_build_editable = get_requires_for_build_wheel


def prepare_metadata_for_build_wheel(metadata_directory,
                                     config_settings=None):
    p, meta = _metadata()
    info = os.path.join(metadata_directory, _dist_info(p))
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(meta)
    return _dist_info(p)


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None,
                metadata_directory=None):
    entries = [(rel.replace(os.sep, "/"), open(full, "rb").read())
               for full, rel in _package_files()]
    return _write_wheel(wheel_directory, entries)


def build_editable(wheel_directory, config_settings=None,
                   metadata_directory=None):
    pth = ("%s\n" % ROOT).encode()
    return _write_wheel(wheel_directory, [("_taskwheel_editable.pth", pth)])


def build_sdist(sdist_directory, config_settings=None):
    p, meta = _metadata()
    base = "%s-%s" % (p["name"], p["version"])
    name = base + ".tar.gz"
    files = [(full, rel) for full, rel in _package_files()]
    for extra in ("pyproject.toml", "README.md",
                  os.path.join("build_backend", "twbuild.py")):
        if os.path.exists(os.path.join(ROOT, extra)):
            files.append((os.path.join(ROOT, extra), extra))
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz",
                      format=tarfile.PAX_FORMAT) as tar:
        for full, rel in files:
            tar.add(full, arcname=base + "/" + rel.replace(os.sep, "/"))
        data = meta.encode()
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(data)
        ti.mtime = int(time.time())
        tar.addfile(ti, io.BytesIO(data))
    return name
