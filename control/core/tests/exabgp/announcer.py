"""An announcer's ExaBGP API process: stands in for a server's BGP daemon.

Prints every line written to the FIFO argv[1] and appends every line ExaBGP writes to its stdin
(neighbor state changes, `done` answers) to the file argv[2], so the test can see the session
come up. Exits when ExaBGP closes its stdin.
The FIFO is opened read-write so it never reports end-of-file between two test writes.
"""
import os
import select
import sys


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    fifo = os.open(sys.argv[1], os.O_RDWR | os.O_NONBLOCK)
    stdin = sys.stdin.fileno()
    seen = open(sys.argv[2], "ab", buffering=0)
    pending = b""
    while True:
        ready, _, _ = select.select([stdin, fifo], [], [])
        if stdin in ready:
            data = os.read(stdin, 65536)
            if not data:
                return
            seen.write(data)
        if fifo in ready:
            pending += os.read(fifo, 65536)
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    say(line.decode())


main()
