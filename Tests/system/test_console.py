"""The serial console and the CLI, driven through a real pty as a terminal would.

Without a running daemon, `bloo console` works on the configuration store directly
(the repair path of a field technician); these tests use that path with a temporary
data directory. `--confirm-unit-seconds 1` makes `commit confirmed N` wait N seconds.
"""
import os
import re
import time

import pytest

from console_support import Console, cli, FACTORY_PASSWORD

PROMPT = "admin@bloo> "
EDIT = "admin@bloo# "


@pytest.fixture
def console(bloo, tmp_path):
    consoles = []

    def start(**kwargs):
        c = Console(bloo, kwargs.pop("data_dir", tmp_path), **kwargs)
        consoles.append(c)
        return c

    yield start
    for c in consoles:
        c.close()


def settle(c, prompt):
    """Waits until everything typed so far has been handled: a pasted block prints one
    prompt per line, so run a marker command and wait for its output."""
    c.send("show marker-after-paste\r")
    c.expect("unknown word 'marker-after-paste'", timeout=60)
    c.expect(prompt, timeout=60)


def running_text(bloo, data_dir):
    result = cli(bloo, data_dir, "show", "configuration", "running")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_banner_and_good_login(console):
    c = console()
    banner = c.expect("login: ")
    assert "Bloophone ProxyServer bloo" in banner
    assert "bloo " in banner and "revision" in banner
    c.send("admin\r")
    c.expect("Password: ")
    c.send(FACTORY_PASSWORD + "\r")
    c.expect(PROMPT)
    assert FACTORY_PASSWORD not in c.text(), "the password was echoed"
    assert "admin logged in, class admin" in c.text()


def test_bad_login_is_refused_and_delayed(console):
    c = console()
    c.expect("login: ")
    c.send("admin\r")
    c.expect("Password: ")
    c.send("wrong-password\r")
    c.expect("Login incorrect")
    failed_at = time.monotonic()
    c.send("typed-ahead-during-delay\r")   # dropped: no guessing while the delay runs
    c.expect("login: ")
    assert time.monotonic() - failed_at >= 1.8
    c.send("nobody\r")
    c.expect("Password: ")
    c.send(FACTORY_PASSWORD + "\r")
    c.expect("Login incorrect")
    second_failure = time.monotonic()
    c.expect("login: ", timeout=15)
    assert time.monotonic() - second_failure >= 3.8
    c.send("admin\r")
    c.expect("Password: ")
    c.send(FACTORY_PASSWORD + "\r")
    c.expect(PROMPT)
    assert "console.login_failed" in c.log_text()
    assert "wrong-password" not in c.log_text()


def test_abbreviations_errors_help_and_completion(console):
    c = console()
    c.login()
    assert re.search(r"bloo \S+ \(revision", c.run("sh ver", PROMPT))
    assert "192.0.2." in c.run("sh int", PROMPT) or "lo: state" in c.run("sh int", PROMPT)
    # An unknown word names the command and what was expected there.
    out = c.run("show bogus", PROMPT)
    assert "error: show: unknown word 'bogus': expected one of: version, system, interfaces" in out
    out = c.run("s", PROMPT)
    assert "'s' is ambiguous" not in out  # 's' is unique here: show
    out = c.run("conf x", PROMPT)
    assert "error: configure: unknown word 'x'" in out
    # '?' at any point: at the start, after a word, inside a word.
    c.send("?")
    help_all = c.expect(PROMPT)
    assert "configure" in help_all and "show" in help_all and "factory-reset" in help_all
    c.send("show ?")
    help_show = c.expect(PROMPT + "show ")
    assert "interfaces" in help_show and "registrations" in help_show and "cdr" in help_show
    c.send("\x15")  # ^U clears the line
    c.send("show re?")
    help_re = c.expect(PROMPT + "show re")
    assert "registrations" in help_re and "relay" in help_re and "version" not in help_re
    c.send("\x15")
    # Tab completes a unique word, then the next one, then runs.
    c.send("sh\t")
    c.expect("show ")
    c.send("conf\t")
    c.expect("configuration ")
    c.send("hi\t")
    c.expect("history ")
    out = c.run("", PROMPT)
    assert "commit 0" in out and "factory default" in out


def test_history_with_control_keys_on_dumb_terminal(console):
    c = console(term="dumb")
    c.login()
    c.run("show version", PROMPT)
    c.run("show configuration", PROMPT)
    c.send("\x10\x10")            # ^P ^P: two back
    c.send("\r")
    assert "revision" in c.expect(PROMPT)
    c.send("\x10")                # ^P: the line just run again
    c.send("\r")
    assert "revision" in c.expect(PROMPT)
    # Backspace as DEL and as ^H, ^W, and line noise: the result is "show version".
    c.send("shox\x7f\x08ow conf\x17version\x00\x01\x1b[99~\x9b\xff")
    c.send("\r")
    assert "revision" in c.expect(PROMPT)
    assert "\x1b" not in c.text(), "an escape sequence was sent to a dumb terminal"


def test_arrows_on_an_ansi_terminal(console):
    c = console(term="xterm")
    c.login()
    c.run("show version", PROMPT)
    c.run("show system", PROMPT)
    c.send("\x1b[A\x1b[A\r")      # up, up: show version (the line is redrawn in place)
    c.expect("show version\r\nbloo .* \\(revision")
    c.expect(PROMPT)
    # Left arrow then insert in the middle of the line.
    c.send("show ersion" + "\x1b[D" * 6 + "v\r")
    c.expect("\r\nbloo .* \\(revision")
    c.expect(PROMPT)
    assert "\x1b[" in c.text(), "an ANSI terminal should get cursor movement"


def test_ctrl_c_abandons_and_ctrl_d_logs_out(console):
    c = console()
    c.login()
    c.send("reboot")
    c.send("\x03")
    c.expect(r"\^C")
    c.expect(PROMPT)
    c.send("\x04")
    c.expect("logged out")
    c.expect("login: ")


def test_pasted_configuration_with_line_noise(console, bloo, tmp_path):
    c = console()
    c.login()
    c.run("configure", EDIT)
    pasted = (
        "set system hostname edge-7\r\n"
        "set interfaces eth0 address 192.0.2.10/24\r\n"
        "set interfaces eth0 vlan 100 address 10.100.0.1/24\n"
        "set routes default next-hop 192.0.2.1\n"
        "# a comment line from a saved file\n"
        "set tunnel tcp 127.0.0.1:1720\r"
        "set relay public-address 198.51.100.7\r\n"
        "set gatekeeper address 192.0.2.50:1719\r\n"
        "set subscriber alice secret \"two words\"\r\n"
    )
    c.paste(pasted)
    settle(c, EDIT)
    out = c.run("compare", EDIT)
    assert "+ set interfaces eth0 vlan 100 address 10.100.0.1/24" in out
    assert "+ set subscriber alice secret \"two words\"" in out
    out = c.run("commit comment \"pasted\"", "admin@edge-7# ")
    assert "commit complete" in out
    text = running_text(bloo, tmp_path)
    for line in ["set system hostname edge-7", "set routes default next-hop 192.0.2.1",
                 "set tunnel tcp 127.0.0.1:1720", "set subscriber alice secret \"two words\""]:
        assert line + "\n" in text
    # What `show configuration` prints pastes back into a fresh candidate unchanged.
    c.run("delete subscriber", "admin@edge-7# ")
    c.paste(text.replace("\n", "\r"))
    settle(c, "admin@edge-7# ")
    assert "no differences" in c.run("compare", "admin@edge-7# ")


def test_commit_failing_validation_leaves_running_untouched(console, bloo, tmp_path):
    c = console()
    c.login()
    before = running_text(bloo, tmp_path)
    c.run("configure", EDIT)
    c.run("delete system user admin", EDIT)
    c.run("set tunnel tls 0.0.0.0:8443 certificate /data/tls/c.pem", EDIT)
    out = c.run("commit", EDIT)
    assert "error: commit: the candidate is not valid; nothing was changed" in out
    assert "no user of class admin" in out
    assert re.search(r"line \d+ of 'show configuration candidate': TLS listener 0\.0\.0\.0:8443: missing 'key <path>'", out)
    out = c.run("set interfaces eth0 mtu 20", EDIT)
    assert "error: set: '20' after 'interfaces eth0 mtu': expected a number in 68-9000" in out
    out = c.run("exit", EDIT)
    assert "uncommitted changes" in out
    assert running_text(bloo, tmp_path) == before
    assert not os.listdir(tmp_path / "commits"), "a refused commit wrote something"
    c.run("discard", EDIT)
    c.run("exit", PROMPT)


def test_commit_confirmed_reverts_in_an_open_session(console, bloo, tmp_path):
    c = console()
    c.login()
    c.run("configure", EDIT)
    c.run("set system hostname risky", EDIT)
    out = c.run("commit confirmed 2", "admin@risky# ")
    assert "commit complete; enter 'confirm'" in out
    assert "set system hostname risky" in running_text(bloo, tmp_path)
    c.expect(r"\*\*\* automatic rollback: commit 1 was not confirmed", timeout=8)
    assert "set system hostname bloo\n" in running_text(bloo, tmp_path)
    assert "config.revert" in c.log_text()


def test_confirm_keeps_the_commit(console, bloo, tmp_path):
    c = console()
    c.login()
    c.run("configure", EDIT)
    c.run("set system hostname kept", EDIT)
    c.run("commit confirmed 3", "admin@kept# ")
    assert "commit confirmed" in c.run("confirm", "admin@kept# ")
    time.sleep(4)
    assert "set system hostname kept" in running_text(bloo, tmp_path)
    assert "automatic rollback" not in c.text()


def test_commit_confirmed_reverts_across_a_restart(console, bloo, tmp_path):
    c = console()
    c.login()
    c.run("configure", EDIT)
    c.run("set system hostname risky", EDIT)
    c.run("commit confirmed 2", "admin@risky# ")
    c.kill()                      # nobody is left to revert it...
    time.sleep(3)
    # ...until the next process opens the store: here a new console after the "reboot".
    again = console()
    again.expect(r"\*\*\* automatic rollback: commit 1 was not confirmed")
    again.login()
    assert "set system hostname bloo" in again.run("show configuration", PROMPT)
    history = again.run("show configuration history", PROMPT)
    assert "commit 2" in history and "system" in history


def test_rollback_loads_an_earlier_commit(console, bloo, tmp_path):
    c = console()
    c.login()
    c.run("configure", EDIT)
    c.run("set system hostname first", EDIT)
    c.run("commit comment one", "admin@first# ")
    c.run("set system hostname second", "admin@first# ")
    c.run("commit comment two", "admin@second# ")
    history = c.run("show configuration history", "admin@second# ")
    assert re.search(r"0  commit 2 .* admin  \"two\"", history)
    assert re.search(r"1  commit 1 .* admin  \"one\"", history)
    assert "2  commit 0" in history
    c.run("rollback 1", "admin@second# ")
    out = c.run("compare", "admin@second# ")
    assert "- set system hostname second" in out and "+ set system hostname first" in out
    c.run("commit", "admin@first# ")
    assert "set system hostname first" in running_text(bloo, tmp_path)
    assert "error: rollback: '25'" in c.run("rollback 25", "admin@first# ")


def test_power_cut_during_commit_leaves_old_or_new(console, bloo, tmp_path):
    """SIGKILL the process while it commits a large configuration: the store then holds
    the old configuration or the new one, byte for byte, never a mix."""
    old = running_text(bloo, tmp_path)
    paste = "".join(f"set subscriber user{i:04d} secret secret-number-{i}-{'x' * 40}\r" for i in range(600))
    outcomes = set()
    for attempt in range(6):
        # When an earlier commit won the race against the kill, the prompt carries its hostname.
        hostname = re.search(r"^set system hostname (\S+)$", old, re.M)
        hostname = hostname.group(1) if hostname else "bloo"
        edit = f"admin@{hostname}# "
        c = console()
        c.login(hostname=hostname)
        c.run("configure", edit)
        c.run("delete subscriber", edit) if attempt else None
        c.paste(paste)
        settle(c, edit)
        c.send("set system hostname cut%d\rcommit\r" % attempt)
        time.sleep(0.02 * attempt)
        c.kill()
        now = running_text(bloo, tmp_path)
        assert now == old or (f"set system hostname cut{attempt}\n" in now
                              and now.count("set subscriber user") == 600
                              and now.endswith(f"secret-number-599-{'x' * 40}\n")), now[-300:]
        outcomes.add("new" if now != old else "old")
        old = now
        leftovers = [n for n in os.listdir(tmp_path / "commits") if not n.endswith(".conf")]
        assert all(n.startswith(".") for n in leftovers)
    assert outcomes, "no attempt ran"


def test_factory_reset_asks_for_confirmation(console, bloo, tmp_path):
    c = console(extra=("--reboot-command", "/bin/true"))
    c.login()
    c.run("configure", EDIT)
    c.run("set system hostname custom", EDIT)
    c.run("commit", "admin@custom# ")
    c.run("exit", "admin@custom> ")
    c.send("factory-reset\r")
    c.expect("Type 'yes' to proceed: ")
    c.send("no\r")
    c.expect("cancelled")
    c.expect("admin@custom> ")
    assert "hostname custom" in running_text(bloo, tmp_path)
    c.send("factory-reset\r")
    c.expect("Type 'yes' to proceed: ")
    c.send("yes\r")
    c.expect("configuration reset to the factory default")
    c.expect("the appliance is rebooting")
    assert "set system hostname bloo\n" in running_text(bloo, tmp_path)


def test_operator_may_look_but_not_configure(console):
    c = console()
    c.login()
    c.run("configure", EDIT)
    c.run("set system user noc class operator", EDIT)
    c.send("set system user noc password\r")
    c.expect("New password: ")
    c.send("look-only-9\r")
    c.expect("Retype new password: ")
    c.send("look-only-9\r")
    c.expect(EDIT)
    out = c.run("show configuration candidate", EDIT)
    assert "set system user noc password-hash pbkdf2-sha256$" in out
    assert "look-only-9" not in out
    c.run("commit", EDIT)
    c.run("exit", PROMPT)
    c.run("logout", "login: ")
    c.send("noc\r")
    c.expect("Password: ")
    c.send("look-only-9\r")
    c.expect("noc@bloo> ")
    c.send("configure\r")
    c.expect("error: configure: user 'noc' of class operator may not change the configuration")
    c.expect("noc@bloo> ")
    c.send("show version\r")
    c.expect("revision")
    c.expect("noc@bloo> ")


def test_pager_on_long_output(console):
    c = console(rows=6)
    c.login()
    c.send("show configuration\r")
    first = c.expect("--More--")
    assert "set system hostname bloo" in first
    assert "set relay ports" not in first
    c.send(" ")                   # next page: the rest (9 lines, 5 per page)
    assert "set relay ports 20000-29999" in c.expect(PROMPT)
    c.send("show configuration\r")
    c.expect("--More--")
    c.send("q")                   # quit: the rest is not shown
    assert "set relay ports" not in c.expect(PROMPT)


def test_idle_session_is_logged_out(console):
    c = console(extra=("--idle-timeout", "2"))
    c.login()
    c.expect("logged out", timeout=6)
    c.expect("login: ")


def test_hangup_ends_the_session_and_the_console_carries_on(console, tmp_path):
    c = console()
    c.login()
    c.run("configure", EDIT)
    os.close(c.master)            # the terminal goes away (modem hangup, pty closed)
    time.sleep(1.5)
    assert c.process.poll() is None, "bloo console died on a hangup"
    assert "console.hangup" in c.log_text()


def test_noninteractive_cli(bloo, tmp_path):
    result = cli(bloo, tmp_path, "show", "version")
    assert result.returncode == 0
    assert re.match(r"bloo \S+ \(revision \S+, built \S+\)\n", result.stdout)
    result = cli(bloo, tmp_path, "sh", "ver")
    assert result.returncode == 0 and "revision" in result.stdout
    result = cli(bloo, tmp_path, "-c", "show configuration")
    assert result.returncode == 0 and "set system hostname bloo" in result.stdout
    result = cli(bloo, tmp_path, "show", "bogus")
    assert result.returncode == 1
    assert "error: show: unknown word 'bogus'" in result.stderr
    result = cli(bloo, tmp_path, "configure")
    assert result.returncode == 1 and "interactive" in result.stderr
    result = cli(bloo, tmp_path, "show", "calls")
    assert result.returncode == 1 and "daemon is not running" in result.stderr


def test_ping_streams_each_reply_and_ctrl_c_interrupts(console, bloo, tmp_path):
    c = console()
    c.login()
    c.send("ping 127.0.0.1 count 3\r")
    sent = time.monotonic()
    c.expect(r"icmp_seq=1 ")
    first = time.monotonic()
    c.expect(r"icmp_seq=3 ")
    last = time.monotonic()
    c.expect("3 packets transmitted, 3 received")
    c.expect(PROMPT)
    # Each reply is on the screen as it arrives (one a second), not all at the end.
    assert first - sent < 1.0 and last - first > 1.5, (sent, first, last)

    # ^C stops a long ping: its statistics, then the prompt, at once.
    c.send("ping 127.0.0.1 count 100\r")
    c.expect(r"icmp_seq=2 ")
    c.send("\x03")
    interrupted = time.monotonic()
    c.expect(r"\^C")
    c.expect("127.0.0.1 ping statistics")
    c.expect(PROMPT)
    assert time.monotonic() - interrupted < 2.0
    assert "icmp_seq=5 " not in c.text()
    assert "revision" in c.run("show version", PROMPT)

    # One-shot mode (ssh admin@box ping ...) collects the output and exits 0.
    result = cli(bloo, tmp_path, "ping", "127.0.0.1", "count", "2")
    assert result.returncode == 0 and "2 received" in result.stdout, result
