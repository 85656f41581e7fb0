#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes one-way stream records (docs/FORMAT.md section 11) with any header
# values, for tests of the receiver against hostile streams:
#   mkrecord.py OUT NAME:SIZE:OFFSET:LEN[:FILLBYTE] ...
import hashlib
import struct
import sys

out = open(sys.argv[1], "wb")
for spec in sys.argv[2:]:
    parts = spec.split(":")
    name, size, off, ln = parts[0].encode(), int(parts[1]), int(parts[2]), int(parts[3])
    fill = int(parts[4]) if len(parts) > 4 else 0x41
    hdr = bytearray(32)
    hdr[0:4] = b"AGS1"
    hdr[4] = 1
    hdr[5] = len(name)
    struct.pack_into("<QQI", hdr, 8, size, off, ln)
    body = bytes(hdr) + name + bytes([fill]) * ln
    out.write(body + hashlib.sha256(body).digest())
out.close()
