"""Build and install the lumio package with Debian's setuptools, offline:

    /usr/bin/python3 -m pip install --no-build-isolation ./python

The C library's sources (../src) are compiled into the extension, with the
same warnings and hidden internal symbols as the CMake build; the libraries
it uses come from Debian's -dev packages (scripts/setup.sh), found with
pkg-config. `make build` builds the same package into build/python."""

import glob
import os
import re
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEPS = ["liburing", "libzstd", "libxxhash", "libcurl", "libcrypto", "jansson", "blosc", "zlib",
        "libisal", "libprotobuf-c", "libwebsockets"]


def pkg_config(*args):
    return subprocess.run(["pkg-config", *args, *DEPS], check=True, capture_output=True,
                          text=True).stdout.split()


def version():
    with open(os.path.join(ROOT, "include", "lumio", "lumio.h")) as f:
        return re.search(r'#define LUMIO_VERSION_STRING "([^"]+)"', f.read()).group(1)


def rel(paths):
    return [os.path.relpath(p, HERE) for p in paths]


library = [p for d in ("core", "ring", "remote", "stream", "zarr")
           for p in sorted(glob.glob(os.path.join(ROOT, "src", d, "*.c")))]
extension = sorted(glob.glob(os.path.join(HERE, "src", "*.c")))
# pprof's profile.proto in C (export_pprof.c), by protoc-c as in CMakeLists.txt.
GEN = os.path.join(HERE, "build", "gen")
os.makedirs(GEN, exist_ok=True)
subprocess.run(["protoc-c", "--proto_path=" + os.path.join(ROOT, "src"), "--c_out=" + GEN,
                "stream/pprof.proto"], check=True)
library.append(os.path.join(GEN, "stream", "pprof.pb-c.c"))
cflags = pkg_config("--cflags")
libs = pkg_config("--libs")

setup(
    name="lumio",
    version=version(),
    description="Chunked data at the speed of the hardware: Zarr arrays, remote objects, "
                "profile streams",
    packages=["lumio"],
    package_dir={"lumio": "lumio"},
    package_data={"lumio": ["py.typed"]},
    ext_modules=[
        Extension(
            "lumio._lumio",
            sources=rel(extension + library),
            include_dirs=[os.path.join(ROOT, "include"), os.path.join(ROOT, "src"), GEN],
            define_macros=[("_GNU_SOURCE", None), ("LUMIO_BUILDING", None)],
            extra_compile_args=["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra",
                                "-Wno-missing-field-initializers", "-Wno-cast-function-type"]
                               + [f for f in cflags if f.startswith("-I")],
            libraries=[f[2:] for f in libs if f.startswith("-l")] + ["m", "pthread"],
            library_dirs=[f[2:] for f in libs if f.startswith("-L")],
        )
    ],
    python_requires=">=3.11",
)
