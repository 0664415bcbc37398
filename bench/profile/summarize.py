#!/usr/bin/env python3
"""Where the CPU goes: reads `perf script` output (samples with call chains, taken system-wide at
a fixed frequency) on stdin and prints, for the agent, its sandboxes before the job's exec, the
coordinator and the kernel workers that clean up after sandboxes, the share of each step of a
job.  A sample is counted for the first frame, from the leaf up, that names a known step (kernel
frames are exact; user frames only as far as the unwinder got, so a user-space sample without a
known frame counts as "other" with its leaf symbol listed).  Standard library only.

Each group is also split by thread (perf's tid): the busiest threads with their CPU per job and
their three largest steps, which tells the agent's threads apart (the service thread: WebSocket
and the results journal; the sandbox's prewarm thread: network namespaces; the janitor; the job
threads), and the rest summed up (in the launcher's group: each sandbox child until it names
itself).

Usage: perf script -F comm,tid,ip,sym | summarize.py JOBS [SECONDS_PER_SAMPLE]
"""
import collections
import re
import sys

# Process groups, by command name (perf keeps the first 15 characters).
GROUPS = [
    ("agent", re.compile(r"^cacheout-agent")),
    ("sandbox init (before exec)", re.compile(r"^cacheout-init")),
    # The agent's sandbox launcher, and the sandbox child it clones until that names itself.
    ("sandbox launcher", re.compile(r"^cacheout-launch")),
    ("coordinator", re.compile(r"^cacheout-coord")),
    ("cacheout-run (one-shot)", re.compile(r"^cacheout-run")),
    ("kernel workers (any user's clean-up)", re.compile(r"^kworker")),
]

# Steps, by frame symbol; the first frame from the leaf that matches one decides.
STEPS = [
    ("seccomp load", r"seccomp|sbx_seccomp"),
    ("network namespace (create, setns, clean-up)",
     r"copy_net_ns|setup_net|cleanup_net|net_namespace|^ops_init|^ops_exit|prewarm|__x64_sys_setns|"
     r"unregister_netdevice|rtnl_|dev_change_flags|loopback_"),
    ("cgroup migration (join)",
     r"cgroup_attach_task|cgroup_migrate|cgroup_procs_write|cgroup1_procs_write|"
     r"cgroup1_tasks_write|__cgroup1_procs_write|cgroup_update_dfl_csses|rcu_sync_enter"),
    ("cgroup mkdir/rmdir",
     r"cgroup_mkdir|cgroup_rmdir|css_create|css_free|css_killed|css_release|cgroup_destroy|"
     r"kernfs_create|kernfs_remove|kernfs_new_node|mem_cgroup_css|cpu_cgroup_css|"
     r"sbx_cgroup_(create|remove|rmdir|mkdir)|cgroup_free"),
    ("cgroup file writes (limits, kill, stats)",
     r"cgroup_file_write|cgroup1_file_write|cgroup_kill|mem_cgroup_(write|resize|read)|"
     r"cpu_cfs|tg_set_cfs|cpu_.*_write|pids_max_write|sbx_cgroup|kernfs_fop|cgroup_seqfile"),
    ("mounts, pivot_root, umount",
     r"path_mount|do_mount|do_new_mount|move_mount|open_tree|pivot_root|umount|mount_setattr|"
     r"copy_mnt_ns|put_mnt_ns|namespace_unlock|fill_super|vfs_get_tree|cleanup_mnt|"
     r"mntput|drop_collected|attach_recursive|copy_tree|__detach_mounts|sbx_.*mount|mnt_"),
    ("clone (process, other namespaces)",
     r"copy_process|kernel_clone|create_new_namespaces|copy_namespaces|dup_mm|dup_mmap|"
     r"copy_page_range|alloc_pid|create_pid_namespace|copy_ipcs|free_ipc|copy_utsname|"
     r"__x64_sys_clone|__clone|free_nsproxy|put_ipc_ns|switch_task_namespaces"),
    ("exec", r"do_execve|bprm_|load_elf_binary|begin_new_exec|execve"),
    ("exit and reap",
     r"do_exit|do_group_exit|exit_mmap|release_task|do_wait|wait4|waitid|exit_files|exit_mm|"
     r"__put_task|pidfd|zap_pid_ns|sbx_janitor|reap"),
    ("work folder and files", r"work_file|write_work|write_job|sendfile|shmem_|ext4_|mkdir|unlink"),
    ("pipes and output", r"pipe_|pipe2|splice|outq|on_output|output_cb|eventfd"),
    ("JSON", r"^json_|jw_|jansson|_json|hashtable_|utf8_|dump_|^lex_|^parse_"),
    ("WebSocket, HTTP, TCP",
     r"^lws_|lws|tcp_|^sock_|sendto|recvfrom|sendmsg|recvmsg|^inet_|^ip_|^__dev_queue|"
     r"net_rx|^__netif|loopback_xmit|epoll|ep_poll|http|coord_api|coord_agent_ws|coord_ws"),
    ("SQLite store", r"sqlite3|coord_store|store_sqlite|^pager|^btree"),
    ("logging", r"co_log|vfprintf|__printf|strftime|localtime"),
    ("memory allocation", r"malloc|^free$|_int_free|calloc|realloc|co_x|cfree|mmap|munmap|brk"),
    ("thread start, scheduling, futex",
     r"pthread_create|start_thread|futex|schedule|finish_task_switch|try_to_wake_up"),
]
STEP_RX = [(name, re.compile(rx)) for name, rx in STEPS]
SYSCALL = re.compile(r"^__(?:x64|do|se)_sys_(\w+)")
# Leaves that are kernel entry or exception code (page faults ...), not the program's own code.
KERNEL_LEAF = ("exc_", "asm_", "irqentry", "do_syscall", "entry_SYSCALL", "_raw_spin")
HEAD = re.compile(r"^(\S.*?)\s+(\d+)\s*$")


def group_of(comm):
    for name, rx in GROUPS:
        if rx.match(comm):
            return name
    return None


def classify(frames):
    for sym in frames:
        for name, rx in STEP_RX:
            if rx.search(sym):
                return name, sym
    for sym in frames:  # no step: name the system call, if the sample is inside one
        m = SYSCALL.match(sym)
        if m:
            return "other", "syscall " + m.group(1)
    return "other", ("user " if frames and not frames[0].startswith(KERNEL_LEAF) else "") + (
        frames[0] if frames else "?")


def main():
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    period = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    counts = collections.defaultdict(collections.Counter)
    other = collections.defaultdict(collections.Counter)
    # group -> tid -> step -> samples
    threads = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
    comm, tid, frames = None, None, []

    def flush():
        g = group_of(comm) if comm is not None else None
        if g is None:
            return
        step, sym = classify(frames)
        counts[g][step] += 1
        threads[g][tid][step] += 1
        if step == "other":
            other[g][sym] += 1

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            comm, tid, frames = None, None, []
            continue
        if not line.startswith(("\t", " ")):
            m = HEAD.match(line)
            comm = m.group(1).strip() if m else line.split()[0]
            tid = m.group(2) if m else "?"
            continue
        parts = line.split(None, 1)
        sym = parts[1] if len(parts) > 1 else "?"
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym.split(" (")[0])
        frames.append(sym)
    flush()
    for g, _ in GROUPS:
        c = counts.get(g)
        if not c:
            continue
        total = sum(c.values())
        per = ""
        if jobs and period:
            per = ", %.0f us CPU per job" % (total * period * 1e6 / jobs)
        print("%s: %d samples%s" % (g, total, per))
        for step, n in c.most_common():
            us = ""
            if jobs and period:
                us = "  %6.0f us/job" % (n * period * 1e6 / jobs)
            print("  %-48s %5.1f%%%s" % (step, 100.0 * n / total, us))
        if other.get(g):
            print("  other, by leaf: " + ", ".join(
                "%s %.1f%%" % (s, 100.0 * n / total) for s, n in other[g].most_common(12)))
        print_threads(threads[g], total, jobs, period)
        print()


def print_threads(by_tid, total, jobs, period, shown=6):
    """The busiest threads of a group, then the others summed up."""
    def cost(n):
        return "%6.0f us/job" % (n * period * 1e6 / jobs) if jobs and period else ""
    ranked = sorted(by_tid.items(), key=lambda kv: -sum(kv[1].values()))
    print("  by thread:")
    for t, steps in ranked[:shown]:
        n = sum(steps.values())
        top = ", ".join("%s %.0f%%" % (s, 100.0 * k / n) for s, k in steps.most_common(3))
        print("    tid %-8s %5.1f%% %s  (%s)" % (t, 100.0 * n / total, cost(n), top))
    rest = ranked[shown:]
    if rest:
        n = sum(sum(steps.values()) for _, steps in rest)
        print("    %d other threads %5.1f%% %s" % (len(rest), 100.0 * n / total, cost(n)))


if __name__ == "__main__":
    main()
