//! Follows the addresses this node holds and prints each datapath delta, as a CNI agent would act
//! on them.
//!
//! Against the announcer on this node:
//!
//! ```text
//! cargo run -p ferrolb-cni --example watch_local -- /run/ferrolb/announcer.sock
//! ```
//!
//! Without an announcer, `--demo` serves one in this process (ferrolb-proto's real server over a
//! table the example changes, on a socket in a temporary directory), restarts it twice and shows
//! what the watch makes of it: changes resumed by revision after a server restart, a `Resync` after
//! an announcer restart.
//!
//! ```text
//! cargo run -p ferrolb-cni --example watch_local -- --demo
//! ```

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ferrolb_cni::{Client, Connection, Delta, Target, WatchOptions, watch_local};
use ferrolb_proto::{Announcement, AnnouncementTable, AnnouncerService, SharedTable, serve_unix};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let argument = std::env::args().nth(1).unwrap_or_else(|| ferrolb_proto::DEFAULT_SOCKET_PATH.to_string());
    if argument == "--demo" {
        return demo().await;
    }
    let target = Target::unix(PathBuf::from(argument));
    let mut deltas = watch_local(target, WatchOptions::default());
    let mut connection = deltas.connection();
    loop {
        tokio::select! {
            delta = deltas.next() => match delta {
                Some(delta) => print(&delta),
                None => return Ok(()),
            },
            Ok(()) = connection.changed() => println!("connection: {:?}", *connection.borrow_and_update()),
        }
    }
}

fn print(delta: &Delta) {
    match delta {
        Delta::Acquired(a) => {
            println!("acquired {} (revision {}) for {:?} on {:?}", a.ip, a.revision, a.services, a.interfaces)
        }
        Delta::Changed { previous, current } => println!(
            "changed  {} (revision {}): interfaces {:?} -> {:?}",
            current.ip, current.revision, previous.interfaces, current.interfaces
        ),
        Delta::Released(a) => println!("released {}", a.ip),
        Delta::Resync { reason, held, released } => println!(
            "resync ({}): holding {:?}, released {:?}",
            reason.as_str(),
            held.iter().map(|a| a.ip).collect::<Vec<_>>(),
            released.iter().map(|a| a.ip).collect::<Vec<_>>()
        ),
    }
}

fn held(ip: &str, node: &str) -> Announcement {
    let ip: IpAddr = ip.parse().expect("an address");
    Announcement::new(ip, node, SystemTime::now()).with_service("default", "web").with_interface("eth0")
}

/// An announcer served by this process until the returned sender is dropped.
async fn serve(path: PathBuf, table: SharedTable) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = AnnouncerService::new(table);
    tokio::spawn(serve_unix(path.clone(), service, async {
        let _ = stopped.await;
    }));
    while !path.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop
}

async fn demo() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("announcer.sock");
    let table = SharedTable::new(AnnouncementTable::new("node-a", 1));
    table.apply(held("198.51.100.200", "node-a"));
    table.apply(held("198.51.100.201", "node-b"));
    let stop = serve(path.clone(), table.clone()).await;

    let mut deltas = watch_local(Target::unix(&path), WatchOptions::default());
    let mut show = async |what: &str, count: usize| {
        println!("-- {what}");
        for _ in 0..count {
            match tokio::time::timeout(Duration::from_secs(10), deltas.next()).await {
                Ok(Some(delta)) => print(&delta),
                _ => println!("(no delta)"),
            }
        }
    };
    show("first watch: a snapshot of what node-a holds", 1).await;

    table.apply(held("2001:db8:100::1000", "node-a"));
    table.apply(held("198.51.100.200", "node-b"));
    show("live changes", 2).await;

    drop(stop);
    tokio::time::sleep(Duration::from_millis(200)).await;
    table.apply(held("198.51.100.202", "node-a"));
    let stop = serve(path.clone(), table.clone()).await;
    show("the gRPC server restarted; the change made meanwhile, resumed by revision", 1).await;

    drop(stop);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let restarted = SharedTable::new(AnnouncementTable::new("node-a", 2));
    restarted.apply(held("198.51.100.202", "node-a"));
    let _stop = serve(path.clone(), restarted).await;
    show("the announcer restarted (new epoch): a resync", 1).await;

    let mut client = Client::connect(&Target::unix(&path)).await?;
    let owner = client.get_owner("198.51.100.202".parse()?).await?;
    println!("-- GetOwner 198.51.100.202: {:?}", owner.map(|o| o.announcement.node));
    let connection: Connection = deltas.connection().borrow().clone();
    println!("-- connection: {connection:?}");
    Ok(())
}
