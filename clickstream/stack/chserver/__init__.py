"""The local ClickHouse: chdb's embedded engine behind the ClickHouse HTTP interface.

chdb (`pip install 'clickstream[clickhouse-local]'`) is the ClickHouse engine as a Python
library. Only one process may open a data directory, yet `consume` inserts while `report`
and `status` read. So one server process owns the directory and every command reaches it
with clickhouse-connect over HTTP, exactly as it reaches a real ClickHouse server: only
host, port and credentials differ.

chdb 4.4 carries clickhouse-local's `SYSTEM START LISTEN HTTP`, but its embedded entry
point installs no server callback ("Can't start servers because start_servers_callback is
not set"), so `protocol` speaks the part of the HTTP interface that clickhouse-connect
uses, over one chdb connection:

    python -m clickstream.stack.chserver --path DIR --port 8123

`control` starts, waits for, inspects and stops that process for `clickstream stack`.
"""
