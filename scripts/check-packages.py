#!/usr/bin/env python3
"""Checks that every external program and plugin the project's scripts use comes from a Debian
package that scripts/packages/*.txt names (directly, or as something a named package depends
on), so that a fresh machine that ran scripts/bootstrap.sh has all of it.

What is checked, one line each and the closing line "packages: N passed, M failed":
- COMMANDS below is the maintained list of the external commands the scripts call.  A simple
  scan of the scripts (command positions of shell lines, `command -v X`, and the first word of
  Python subprocess calls) must find nothing that is not listed, and every listed command must
  appear in some script: the list cannot drift from the scripts silently.
- Each listed command is looked up on this machine (`dpkg -S` on its path) and its package must
  be named in scripts/packages/*.txt, be a dependency of one that is, or be Essential.  A missing
  command or an unlisted package fails, naming the package to add.
- PYTHON_MODULES below: each non-standard Python module a driver imports is imported by Debian's
  python3 and the package of its file checked the same way.
- The CNI plugins that Podman's compose networks use: the types in the machine's CNI network
  configurations (/etc/cni/net.d) plus `dnsname`, which resolves the compose services' names
  (`db`, `coordinator`); each /usr/lib/cni/<type> is checked the same way.

Run it after scripts/bootstrap.sh (make test does): it checks this machine as bootstrap left it.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# command -> why the scripts need it.  A path (PostgreSQL's server binaries are not on PATH) is
# checked as it is; its base name is what must appear in the scripts.
COMMANDS = {
    # build
    "cmake": "configure, build, install (scripts/build.sh, tests/packaging)",
    "ctest": "unit tests (scripts/test.sh)",
    "cpack": ".deb packages (tests/packaging)",
    "cc": "tests/packaging compiles the generated migrations",
    "clang": "libFuzzer targets (tests/fuzz)",
    "clang-format": "format check (scripts/test.sh, make format)",
    "git": "the tracked files (format check, make format)",
    "make": "the README's two commands",
    "dpkg-deb": "reads the packages' control fields (tests/packaging)",
    "dpkg-query": "bootstrap and the packaging checks",
    "apt-get": "bootstrap installs the missing packages",
    "apt-cache": "this check: what the listed packages bring",
    # test drivers and clients
    "python3": "every Python test driver and helper",
    "awk": "text processing in bootstrap and the mirror lookup",
    "curl": "HTTP checks in the suites",
    "openssl": "the throw-away CA of the TLS tests (tests/lib/tls.sh)",
    "sqlite3": "store and packaging checks",
    "node": "the dashboard build, unit and end-to-end tests",
    "npm": "the dashboard's dependencies (npm ci)",
    "npx": "the dashboard's unit tests (frontend/run-unit.sh)",
    "chromium": "dashboard end-to-end tests",
    "wrk": "bench/api load generator",
    "hyperfine": "bench/sandbox timings",
    "perf": "bench/profile records the agent and the coordinator (linux-perf)",
    "bwrap": "bench/sandbox comparison",
    "/usr/lib/postgresql/15/bin/initdb": "throw-away PostgreSQL (tests/lib/pg.sh)",
    "/usr/lib/postgresql/15/bin/pg_ctl": "throw-away PostgreSQL (tests/lib/pg.sh)",
    "/usr/lib/postgresql/15/bin/createdb": "throw-away PostgreSQL (tests/lib/pg.sh)",
    "/usr/lib/postgresql/15/bin/psql": "the scale-out suite prints the sessions and locks it "
    "finds when a node hangs",
    # containers
    "podman": "compose and packaging suites",
    "podman-compose": "compose suite",
    "debootstrap": "the debian:bookworm-slim base image when no registry answers",
    "runc": "Podman's runtime on machines without systemd (tests/lib/containers.sh)",
    # rootless sandboxes
    "newuidmap": "rootless sandboxes write their uid map",
    "newgidmap": "rootless sandboxes write their gid map",
    "useradd": "tests/lib/rootless.sh makes the test user",
    "usermod": "subordinate ids for the test user",
    "runuser": "runs commands as the rootless test user",
    "systemd-analyze": "verifies the packages' units (tests/packaging)",
    "setpriv": "runs commands as the rootless test user",
}

# Python modules outside the standard library that the drivers import -> why.  Each is looked
# up with Debian's python3 (/usr/bin/python3: what CI has) and its file's package checked like a
# command's.
PYTHON_MODULES = {
    "jsonschema": "tests/integration/openapi validates answers against the OpenAPI document",
}

# Used only where present (another engine, privilege escalation for non-root users): not
# required on a fresh machine, so neither their presence nor their package is checked.
OPTIONAL = {"docker", "docker-compose", "sudo", "promtool"}

# Given by the machine image itself rather than by Debian (see the README's fresh-machine
# notes): Node.js 20 and npm come with the build machines; Debian 12 has only Node 18.
MACHINE = {"node", "npm", "npx"}

# Programs the project builds itself (run inside sandboxes by the suites).
PROJECT_PROGRAMS = {"sbx-canary"}

# CNI plugins a compose network needs that the network configurations may not name: Podman 4.3
# adds dnsname to a network only when the plugin is installed.
CNI_REQUIRED = {"dnsname": "golang-github-containernetworking-plugin-dnsname"}

SCAN_GLOBS = ["Makefile", ".ci/run", "scripts/*.sh", "tests/**/*.sh", "bench/**/*.sh",
              "frontend/*.sh", "images/debian-mirror.sh", "images/jobs/*.sh"]
PY_GLOBS = ["scripts/*.py", "tests/**/*.py", "bench/**/*.py"]

PASSED = 0
FAILED = 0


def ok(msg):
    global PASSED
    PASSED += 1
    print("ok   " + msg, flush=True)


def bad(msg):
    global FAILED
    FAILED += 1
    print("FAIL " + msg, flush=True)


def files(globs):
    out = []
    for g in globs:
        for p in glob.glob(os.path.join(TOP, g), recursive=True):
            if "node_modules" not in p and os.path.isfile(p) and p not in out:
                out.append(p)
    return sorted(out)


def bash_builtins():
    r = subprocess.run(["bash", "-c", "compgen -b; compgen -k"], capture_output=True, text=True)
    return set(r.stdout.split())


SEP = re.compile(r"(\|\||&&|[;|&(`]|\$\(|\bthen\b|\bdo\b|\belse\b|\btime\b|!)")
PREFIX_WORDS = {"exec", "timeout", "env", "nice", "xargs", "command", "$SUDO", "sudo"}


def shell_lines(text):
    """(line number, code) of @text with comments, single-quoted text, heredocs and the text of
    double-quoted strings removed (a `$(` inside double quotes stays: it runs a command)."""
    out = []
    heredoc = None
    in_single = False
    for n, line in enumerate(text.split("\n"), 1):
        if heredoc:
            if line.strip() == heredoc:
                heredoc = None
            continue
        code = []
        i = 0
        in_double = False
        while i < len(line):
            c = line[i]
            if in_single:
                if c == "'":
                    in_single = False
                i += 1
                continue
            if c == "\\":
                i += 2
                continue
            if in_double:
                if c == '"':
                    in_double = False
                elif line.startswith("$(", i):
                    code.append(" $( ")
                    i += 2
                    continue
                i += 1
                continue
            if c == "'":
                in_single = True
            elif c == '"':
                in_double = True
            elif c == "#" and (i == 0 or line[i - 1] in " \t;"):
                break
            else:
                code.append(c)
            i += 1
        code = "".join(code)
        m = re.search(r"<<-?\s*['\"]?([A-Za-z_]+)['\"]?", line)
        if m and "<<" in code:
            heredoc = m.group(1)
        out.append((n, code))
    return out


def shell_commands(path, builtins, functions):
    """{command: [file:line, ...]} of the external commands at command positions in @path."""
    with open(path, errors="replace") as f:
        text = f.read()
    found = {}
    if path.endswith("Makefile"):
        text = "\n".join(l.lstrip("\t@-") for l in text.split("\n") if l.startswith("\t"))
    for n, code in shell_lines(text):
        for m in re.finditer(r"command -v ([A-Za-z][\w.+-]*)", code):
            found.setdefault(m.group(1), []).append("%s:%d" % (os.path.relpath(path, TOP), n))
        for part in SEP.split(code):
            words = part.split()
            while words and (re.match(r"^[A-Za-z_]\w*=", words[0]) or words[0] in PREFIX_WORDS
                             or re.match(r"^-", words[0]) or re.match(r"^\d+[smh]?$", words[0])):
                words.pop(0)
            if not words:
                continue
            w = words[0]
            if not re.match(r"^[A-Za-z][\w.+-]*$", w) or w in builtins or w in functions:
                continue
            if shutil.which(w) or w in COMMANDS or w in OPTIONAL:
                found.setdefault(w, []).append("%s:%d" % (os.path.relpath(path, TOP), n))
    return found


def python_commands(path):
    with open(path, errors="replace") as f:
        text = f.read()
    found = {}
    for m in re.finditer(r"subprocess\.\w+\(\s*\[\s*\"([^\"]+)\"", text):
        w = m.group(1)
        if w.startswith("/") and not w.startswith("/usr/lib/postgresql"):
            continue  # an absolute path of the system (/bin/true) or of the test itself
        line = text.count("\n", 0, m.start()) + 1
        found.setdefault(w, []).append("%s:%d" % (os.path.relpath(path, TOP), line))
    return found


def listed_packages():
    names = set()
    for p in glob.glob(os.path.join(TOP, "scripts", "packages", "*.txt")):
        with open(p) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    names.add(line)
    return names


def closure(pkgs):
    """The packages that installing @pkgs brings (Depends and PreDepends, recursively)."""
    r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] +
                       sorted(pkgs), capture_output=True, text=True)
    out = set(pkgs)
    for line in r.stdout.split("\n"):
        line = line.strip()
        if line and not line.startswith("|") and ":" not in line and not line.startswith("<"):
            out.add(line)
        m = re.match(r"\|?(?:Pre)?Depends: (\S+)", line)
        if m and not m.group(1).startswith("<"):
            out.add(m.group(1).split(":")[0])
    return out


def package_of(path):
    """The Debian package that owns @path (trying the /usr-merged twin and the symlink's
    target), or None."""
    tries = [path]
    if path.startswith("/usr/"):
        tries.append(path[4:])
    elif path.startswith(("/bin/", "/sbin/", "/lib/")):
        tries.append("/usr" + path)
    real = os.path.realpath(path)
    if real not in tries:
        tries.append(real)
    for p in tries:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            # Diverted paths (linux-perf's /usr/bin/perf) list the diversion first: skip it.
            for line in r.stdout.strip().split("\n"):
                if not line.startswith("diversion"):
                    return line.split(":")[0].split(",")[0].strip()
    return None


def essential(pkg):
    """Essential, or of priority required: debootstrap puts those on every Debian system."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Essential} ${Priority}", pkg],
                       capture_output=True, text=True)
    return r.stdout.strip() in ("yes required", "no required", "yes important")


def check_package(what, path, allowed, listed):
    pkg = package_of(path)
    if pkg is None:
        bad("%s: %s belongs to no Debian package" % (what, path))
    elif pkg in listed:
        ok("%s: %s (package %s, listed)" % (what, path, pkg))
    elif pkg in allowed:
        ok("%s: %s (package %s, brought by a listed package)" % (what, path, pkg))
    elif essential(pkg):
        ok("%s: %s (package %s, essential or required)" % (what, path, pkg))
    else:
        bad("%s: %s is in package %s, which no scripts/packages/*.txt names: add it" %
            (what, path, pkg))


def main():
    builtins = bash_builtins()
    shell_files = files(SCAN_GLOBS)
    functions = set()
    for p in shell_files:
        with open(p, errors="replace") as f:
            functions |= set(re.findall(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)",
                                        f.read(), re.M))
    found = {}
    for p in shell_files:
        for k, v in shell_commands(p, builtins, functions).items():
            found.setdefault(k, []).extend(v)
    for p in files(PY_GLOBS):
        for k, v in python_commands(p).items():
            found.setdefault(k, []).extend(v)

    # 1. the scan against the list, both ways
    names = {os.path.basename(c): c for c in COMMANDS}
    essential_cmds = set()
    for cmd, where in sorted(found.items()):
        if cmd in names or cmd in OPTIONAL or cmd in functions or cmd in PROJECT_PROGRAMS:
            continue
        path = shutil.which(cmd)
        pkg = package_of(path) if path else None
        if pkg and essential(pkg):
            essential_cmds.add(cmd)  # coreutils, grep, sed, ...: on every Debian system
            continue
        bad("%s is called (%s) but not in COMMANDS of scripts/check-packages.py" %
            (cmd, ", ".join(where[:3])))
    ok("scan: %d external commands called by the scripts, %d of them from essential packages"
       % (len(found), len(essential_cmds)))
    texts = "\n".join(open(p, errors="replace").read() for p in shell_files + files(PY_GLOBS))
    for cmd in COMMANDS:
        if not re.search(r"(?<![\w.-])%s(?![\w-])" % re.escape(os.path.basename(cmd)), texts):
            bad("%s is in COMMANDS but no script uses it: remove it from the list" % cmd)

    # 2. each command's package
    listed = listed_packages()
    allowed = closure(listed)
    for cmd in sorted(COMMANDS):
        path = cmd if cmd.startswith("/") else shutil.which(cmd)
        if cmd in MACHINE:
            if path:
                ok("%s: %s (given by the machine image, not by scripts/packages)" % (cmd, path))
            else:
                bad("%s: not installed (it comes with the build machine's image)" % cmd)
            continue
        if not path or not os.path.exists(path):
            bad("%s: not installed (%s): the package that provides it is missing from "
                "scripts/packages/*.txt" % (cmd, COMMANDS[cmd]))
            continue
        if ".pyenv/" in os.path.realpath(path) and os.path.exists("/usr/bin/" + cmd):
            path = "/usr/bin/" + cmd  # a pyenv shim first on PATH; Debian's is what CI has
        check_package(cmd, path, allowed, listed)

    # 2b. each Python module's package (the file Debian's python3 imports)
    for mod in sorted(PYTHON_MODULES):
        if not re.search(r"^\s*(import|from)\s+%s\b" % re.escape(mod), texts, re.M):
            bad("Python module %s is in PYTHON_MODULES but no script imports it" % mod)
        r = subprocess.run(["/usr/bin/python3", "-c", "import %s; print(%s.__file__)" % (mod, mod)],
                           capture_output=True, text=True)
        if r.returncode != 0 or not r.stdout.strip():
            bad("Python module %s: not importable by /usr/bin/python3 (%s): the package that "
                "provides it is missing from scripts/packages/*.txt" % (mod, PYTHON_MODULES[mod]))
            continue
        check_package("python3 module " + mod, r.stdout.strip(), allowed, listed)

    # 3. CNI plugins of the compose networks
    types = set(CNI_REQUIRED)
    for conf in glob.glob("/etc/cni/net.d/*.conflist"):
        try:
            with open(conf) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        for plugin in doc.get("plugins", []):
            for t in (plugin.get("type"), (plugin.get("ipam") or {}).get("type")):
                if t:
                    types.add(t)
    for t in sorted(types):
        path = "/usr/lib/cni/" + t
        if not os.path.exists(path):
            bad("CNI plugin %s: %s is missing: install package %s (and name it in "
                "scripts/packages/compose.txt)" % (t, path, CNI_REQUIRED.get(t, "?")))
            continue
        check_package("CNI plugin " + t, path, allowed, listed)

    print("packages: %d passed, %d failed" % (PASSED, FAILED), flush=True)
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
