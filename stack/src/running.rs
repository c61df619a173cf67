//! What every running stack holds alike, whatever runs its banks ([`Stack`](crate::Stack) in
//! this process, [`ProcessStack`](crate::ProcessStack) as processes): where its parts answer,
//! its secrets, its data, the server children — and the one teardown. Both stacks deref to it,
//! so `stack.bank1_url`, `stack.secrets`, `stack.logs()` read the same on either.

use std::path::PathBuf;

use crate::builder::Prepared;
use crate::databases::Databases;
use crate::secrets::Secrets;
use crate::servers::Servers;

pub struct Running {
    pub bank1_url: String,
    pub bank2_url: String,
    pub namesrv_addr: String,
    pub broker_addr: String,
    /// The keys and tokens both banks run with.
    pub secrets: Secrets,
    /// Broker store, name-server state, SQLite files, `logs/`.
    pub dir: PathBuf,
    pub databases: Databases,
    servers: Option<Servers>,
    keep: bool,
    temp: Option<tempfile::TempDir>,
}

impl Running {
    /// Takes over what [`StackBuilder::prepare`](crate::StackBuilder) started; the banks'
    /// URLs are their settings' listen addresses.
    pub(crate) fn new(p: Prepared, keep: bool) -> (Self, bank1::Settings, bank2::Settings) {
        let Prepared { dir, temp, secrets, servers, databases, s1, s2 } = p;
        let me = Self {
            bank1_url: format!("http://{}", s1.common.listen),
            bank2_url: format!("http://{}", s2.common.listen),
            namesrv_addr: servers.namesrv_addr.clone(),
            broker_addr: servers.broker_addr.clone(),
            secrets,
            dir,
            databases,
            servers: Some(servers),
            keep,
            temp,
        };
        (me, s1, s2)
    }

    pub fn servers(&self) -> &Servers {
        self.servers.as_ref().expect("servers run")
    }

    pub(crate) fn servers_mut(&mut self) -> &mut Servers {
        self.servers.as_mut().expect("servers run")
    }

    /// Each process's log: `namesrv.log`, `broker.log` (and `bank1.log`, `bank2.log` for a
    /// [`ProcessStack`](crate::ProcessStack)).
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// What every stack does last, after its banks: stop the name server and broker, drop the
    /// scratch databases and the temp dir — or keep both, and say where the dir is.
    pub(crate) async fn tear_down(&mut self) {
        if let Some(s) = self.servers.take() {
            s.stop().await;
        }
        self.databases.drop_scratch(self.keep).await;
        if let Some(t) = self.temp.take() {
            if self.keep {
                eprintln!("kept {}", t.keep().display());
            }
        }
    }
}
