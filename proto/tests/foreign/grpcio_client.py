"""A foreign CNI agent: Google's gRPC client for Python (grpcio, gRPC C-core) on the announcer's
unix socket, driven by proto/tests/foreign_client.rs.

    python grpcio_client.py SOCKET PROTO_ROOT

The channel is grpcio's default for a unix socket (no options at all), so its :authority is the
percent-encoded socket path, which the announcer must accept. The client is generated from
PROTO_ROOT/ferrolb/v1/announcer.proto with grpc_tools.protoc into a temporary directory.

It reports what it observes, one JSON object per line on stdout ({"step": ..., ...}); the Rust test
decides whether that is right. Where the test has to act (change the table, restart the announcer)
the script prints {"step": "wait", "for": ...} and reads one line from stdin before going on.
"""

import importlib
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc

TIMEOUT = 10


def generate(proto_root, out):
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "ferrolb/v1/announcer.proto",
        ]
    )
    if code != 0:
        raise SystemExit(f"grpc_tools.protoc failed with {code}")
    sys.path.insert(0, out)
    return (
        importlib.import_module("ferrolb.v1.announcer_pb2"),
        importlib.import_module("ferrolb.v1.announcer_pb2_grpc"),
    )


def report(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def wait(what):
    report("wait", **{"for": what})
    line = sys.stdin.readline()
    if line.strip() != "go":
        raise SystemExit(f"expected 'go' after waiting for {what}, got {line!r}")


def error(call):
    """Runs call, which must fail, and returns its status code name and details."""
    try:
        call()
    except grpc.RpcError as e:
        return {"code": e.code().name, "message": e.details()}
    return {"code": "OK", "message": ""}


def announcement(pb, a):
    return {
        "ip": a.ip,
        "family": pb.AddressFamily.Name(a.family),
        "node": a.node,
        "local": a.local,
        "services": [f"{s.namespace}/{s.name}" for s in a.services],
        "interfaces": list(a.interfaces),
        "since": a.since.seconds,
        "revision": a.revision,
    }


def change(pb, c):
    return {
        "kind": pb.ChangeKind.Name(c.kind),
        "revision": c.revision,
        "epoch": c.epoch,
        "reason": pb.ResyncReason.Name(c.resync_reason),
        "ip": c.announcement.ip if c.HasField("announcement") else "",
    }


def main():
    socket_path, proto_root = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as out:
        pb, pb_grpc = generate(proto_root, out)
        report("versions", grpcio=grpc.__version__)
        # No options: the default authority is what grpcio derives from the socket path.
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            run(pb, pb_grpc.AnnouncerStub(channel))
    report("done")


def run(pb, stub):
    owner = stub.GetOwner(pb.GetOwnerRequest(ip="198.51.100.128"), timeout=TIMEOUT)
    report(
        "get_owner",
        announcement=announcement(pb, owner.announcement),
        programming=len(owner.programming),
    )
    report("get_owner_unparsable", **error(lambda: stub.GetOwner(pb.GetOwnerRequest(ip="198.51.100.300"), timeout=TIMEOUT)))
    report("get_owner_empty", **error(lambda: stub.GetOwner(pb.GetOwnerRequest(ip=""), timeout=TIMEOUT)))
    report("get_owner_unknown", **error(lambda: stub.GetOwner(pb.GetOwnerRequest(ip="198.51.100.200"), timeout=TIMEOUT)))

    listed = stub.ListAnnouncements(pb.ListRequest(), timeout=TIMEOUT)
    report("list", ips=[a.ip for a in listed.announcements], revision=listed.revision, epoch=listed.epoch)
    v6 = stub.ListAnnouncements(
        pb.ListRequest(filter=pb.ListFilter(family=pb.ADDRESS_FAMILY_IPV6)), timeout=TIMEOUT
    )
    report("list_ipv6", ips=[a.ip for a in v6.announcements])
    # proto3 enums are open: grpcio sends a number the server does not know.
    report(
        "list_unknown_family",
        **error(lambda: stub.ListAnnouncements(pb.ListRequest(filter=pb.ListFilter(family=7)), timeout=TIMEOUT)),
    )

    # A live watch: the snapshot, then a change made while the stream is open.
    stream = stub.WatchAnnouncements(pb.WatchRequest(), timeout=60)
    snapshot = []
    for c in stream:
        snapshot.append(change(pb, c))
        if c.kind == pb.CHANGE_KIND_SNAPSHOT_END:
            break
    report("watch_snapshot", changes=snapshot)
    resume = (snapshot[-1]["epoch"], snapshot[-1]["revision"])
    wait("live change")
    live = change(pb, next(stream))
    report("watch_live", change=live)
    resume = (live["epoch"], live["revision"])
    stream.cancel()

    # Away: the test changes the table, then the watch resumes where it stopped.
    wait("changes while away")
    stream = stub.WatchAnnouncements(
        pb.WatchRequest(epoch=resume[0], from_revision=resume[1]), timeout=60
    )
    resumed = []
    for c in stream:
        resumed.append(change(pb, c))
        if len(resumed) == 2:
            break
    stream.cancel()
    report("watch_resumed", changes=resumed)
    resume = (resumed[-1]["epoch"], resumed[-1]["revision"])

    report(
        "watch_without_epoch",
        **error(lambda: next(stub.WatchAnnouncements(pb.WatchRequest(from_revision=resume[1]), timeout=TIMEOUT))),
    )
    report(
        "watch_unknown_family",
        **error(lambda: next(stub.WatchAnnouncements(pb.WatchRequest(filter=pb.ListFilter(family=9)), timeout=TIMEOUT))),
    )

    # The announcer restarts (a new epoch): the same channel reconnects and the resume gets a snapshot.
    wait("restart")
    stream = stub.WatchAnnouncements(
        pb.WatchRequest(epoch=resume[0], from_revision=resume[1]),
        timeout=60,
        wait_for_ready=True,
    )
    restarted = []
    for c in stream:
        restarted.append(change(pb, c))
        if c.kind == pb.CHANGE_KIND_SNAPSHOT_END:
            break
    stream.cancel()
    report("watch_restarted", changes=restarted)

    accepted = stub.ReportProgrammed(
        pb.ReportRequest(ip="198.51.100.128", interface="eth0", ok=True), timeout=TIMEOUT
    )
    report("report_ok", outcome=pb.ReportOutcome.Name(accepted.outcome), current_revision=accepted.current_revision)
    failed = stub.ReportProgrammed(
        pb.ReportRequest(ip="198.51.100.128", interface="eth1", ok=False, error_message="nft: table busy"),
        timeout=TIMEOUT,
    )
    report("report_failed", outcome=pb.ReportOutcome.Name(failed.outcome))
    not_held = stub.ReportProgrammed(pb.ReportRequest(ip="2001:db8:100::1000", interface="eth0", ok=True), timeout=TIMEOUT)
    report("report_not_held", outcome=pb.ReportOutcome.Name(not_held.outcome))
    report(
        "report_bad_interface",
        **error(lambda: stub.ReportProgrammed(pb.ReportRequest(ip="198.51.100.128", interface="eth0/1", ok=True), timeout=TIMEOUT)),
    )
    report(
        "report_unparsable_ip",
        **error(lambda: stub.ReportProgrammed(pb.ReportRequest(ip="fe80::1%eth0", interface="eth0", ok=True), timeout=TIMEOUT)),
    )


if __name__ == "__main__":
    main()
