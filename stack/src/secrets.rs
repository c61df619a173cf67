//! The local stack's keys and tokens: each bank's Ed25519 signing key (and the other bank's
//! public key to verify with), the two operator tokens and the two feed tokens. Generated on
//! first start under `<data-dir>/secrets/` (files readable by the owner only) and reused after;
//! anything set in the environment (`BANK1_ADMIN_TOKEN`, `BANK1_SIGNING_KEY`, …) wins.

use std::path::Path;

use anyhow::Context;
use common::domain::signing::Signer;
use common::service::auth::Token;

/// Everything the two banks need to trust each other and their operators.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub bank1_signer: Signer,
    pub bank2_signer: Signer,
    pub bank1_admin: Token,
    pub bank2_admin: Token,
    /// Presented by bank2 to bank1's transfer feed.
    pub bank1_feed: Token,
    /// Presented by bank1 to bank2's rejection feed.
    pub bank2_feed: Token,
}

const FILE: &str = "secrets.env";

impl Secrets {
    /// Fresh random secrets (tests, benchmarks).
    pub fn generate() -> Self {
        Self {
            bank1_signer: Signer::generate(),
            bank2_signer: Signer::generate(),
            bank1_admin: Token::generate(),
            bank2_admin: Token::generate(),
            bank1_feed: Token::generate(),
            bank2_feed: Token::generate(),
        }
    }

    /// The secrets in `dir/secrets.env`, created (mode 0600) on first use.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        if path.exists() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            return Self::parse(&text)
                .with_context(|| format!("{} is damaged; delete it to start afresh", path.display()));
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let me = Self::generate();
        write_private(&path, &me.to_env())?;
        Ok(me)
    }

    fn to_env(&self) -> String {
        format!(
            "# bank-transfer local stack secrets (generated; keep private). Delete to regenerate.\n\
             BANK1_SIGNING_KEY={}\nBANK2_SIGNING_KEY={}\nBANK1_ADMIN_TOKEN={}\nBANK2_ADMIN_TOKEN={}\n\
             BANK1_FEED_TOKEN={}\nBANK2_FEED_TOKEN={}\n",
            self.bank1_signer.to_base64(),
            self.bank2_signer.to_base64(),
            self.bank1_admin.expose(),
            self.bank2_admin.expose(),
            self.bank1_feed.expose(),
            self.bank2_feed.expose(),
        )
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let get = |name: &str| -> anyhow::Result<String> {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_owned())
                .with_context(|| format!("{name} is missing"))
        };
        let signer =
            |name: &str| -> anyhow::Result<Signer> { Signer::from_base64(&get(name)?).map_err(anyhow::Error::msg) };
        let token = |name: &str| -> anyhow::Result<Token> { Token::parse(&get(name)?).map_err(anyhow::Error::msg) };
        Ok(Self {
            bank1_signer: signer("BANK1_SIGNING_KEY")?,
            bank2_signer: signer("BANK2_SIGNING_KEY")?,
            bank1_admin: token("BANK1_ADMIN_TOKEN")?,
            bank2_admin: token("BANK2_ADMIN_TOKEN")?,
            bank1_feed: token("BANK1_FEED_TOKEN")?,
            bank2_feed: token("BANK2_FEED_TOKEN")?,
        })
    }

    /// Fills what the environment left unset, so that the banks trust each other: each bank's
    /// peer keys are the other bank's actual public key, each feed token the one the other
    /// bank presents.
    pub fn apply(&self, s1: &mut bank1::Settings, s2: &mut bank2::Settings) -> anyhow::Result<()> {
        let (c1, c2) = (&mut s1.common, &mut s2.common);
        for (c, signer) in [(&mut *c1, &self.bank1_signer), (&mut *c2, &self.bank2_signer)] {
            if c.signing_key.is_none() && c.signing_key_file.is_none() {
                c.signing_key = Some(signer.to_base64());
            }
        }
        let b1 = Signer::from_setting(c1.signing_key.as_deref(), c1.signing_key_file.as_deref(), "BANK1_SIGNING_KEY")?;
        let b2 = Signer::from_setting(c2.signing_key.as_deref(), c2.signing_key_file.as_deref(), "BANK2_SIGNING_KEY")?;
        for (c, peer) in [(&mut *c1, &b2), (&mut *c2, &b1)] {
            if c.peer_public_keys.is_none() && c.peer_public_keys_file.is_none() {
                c.peer_public_keys = Some(peer.public_base64());
            }
        }
        c1.admin_token.get_or_insert_with(|| self.bank1_admin.clone());
        c2.admin_token.get_or_insert_with(|| self.bank2_admin.clone());
        let bank1_feed = c1.feed_token.get_or_insert_with(|| self.bank1_feed.clone()).clone();
        let bank2_feed = c2.feed_token.get_or_insert_with(|| self.bank2_feed.clone()).clone();
        c2.peer_feed_token.get_or_insert(bank1_feed);
        c1.peer_feed_token.get_or_insert(bank2_feed);
        Ok(())
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = Secrets::load_or_create(dir.path()).unwrap();
        let again = Secrets::load_or_create(dir.path()).unwrap();
        assert_eq!(first.bank1_signer.key_id(), again.bank1_signer.key_id());
        assert_eq!(first.bank2_admin, again.bank2_admin);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
