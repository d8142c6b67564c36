//! `ninep-attach`: asks a 9P2000.L server to attach as given uids, optionally after MUNGE
//! authentication as diod's clients do it, and prints what the server answered to each.
//!
//! A check of a server's trust model from the client's side: who a connection may act as once
//! it authenticated (or did not), without the kernel's client choosing the uids for it.

#![forbid(unsafe_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use ninep::{Client, ClientError, NOFID, Request, Response};

/// Attach to a 9P2000.L server as each UID in turn and print `attach UID: ok` or
/// `attach UID: refused: ERROR`, one line each.
///
/// With --auth, a Tauth for that uid comes first, then the MUNGE credential of --credential
/// (as `munge -n` prints it) is written into the auth fid, and the first attach names it;
/// the attaches after it name no auth fid, as the kernel's do on a connection that
/// `mount.diod` authenticated.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// The server: `tcp:HOST:PORT` or `unix:PATH`.
    #[arg(long)]
    connect: String,

    /// The uname sent in Tauth and Tattach.
    #[arg(long, default_value = "")]
    uname: String,

    /// The aname sent in Tauth and Tattach (the export, for diod).
    #[arg(long, default_value = "")]
    aname: String,

    /// Authenticate first, claiming this uid in the Tauth.
    #[arg(long, value_name = "UID")]
    auth: Option<u32>,

    /// The credential to write into the auth fid (`-`: standard input). Without it, none is
    /// written.
    #[arg(long, value_name = "FILE", requires = "auth")]
    credential: Option<PathBuf>,

    /// The uids to attach as (Tattach's n_uname), in order.
    #[arg(required = true, value_name = "UID")]
    uids: Vec<u32>,
}

const AFID: u32 = 0;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let outcome = runtime
        .context("cannot start the runtime")
        .and_then(|r| r.block_on(run(&args)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ninep-attach: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<()> {
    let credential = match &args.credential {
        None => Vec::new(),
        Some(path) if path.as_os_str() == "-" => {
            let mut all = Vec::new();
            std::io::stdin().read_to_end(&mut all)?;
            all
        }
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
    };
    let client = if let Some(path) = args.connect.strip_prefix("unix:") {
        Client::connect_unix(path).await
    } else if let Some(addr) = args.connect.strip_prefix("tcp:") {
        Client::connect_tcp(addr).await
    } else {
        bail!("--connect {}: not tcp:HOST:PORT or unix:PATH", args.connect);
    }
    .with_context(|| format!("cannot connect to {}", args.connect))?;
    client
        .version(64 * 1024, "9P2000.L")
        .await
        .context("Tversion")?;
    let uname = Bytes::copy_from_slice(args.uname.as_bytes());
    let aname = Bytes::copy_from_slice(args.aname.as_bytes());
    let mut afid = NOFID;
    if let Some(uid) = args.auth {
        let auth = Request::Auth {
            afid: AFID,
            uname: uname.clone(),
            aname: aname.clone(),
            n_uname: uid,
        };
        match client.call(&auth).await.context("Tauth")? {
            Response::Auth { .. } => println!("auth {uid}: ok"),
            Response::Lerror { ecode } => {
                println!("auth {uid}: refused: {}", os_error(ecode));
                return Ok(());
            }
            other => bail!("Tauth: an unexpected {other:?}"),
        }
        if !credential.is_empty() {
            client
                .write(AFID, 0, credential.into())
                .await
                .context("writing the credential into the auth fid")?;
        }
        afid = AFID;
    }
    for (fid, &uid) in (1..).zip(&args.uids) {
        match client.attach(fid, afid, &uname, &aname, uid).await {
            Ok(_) => println!("attach {uid}: ok"),
            Err(ClientError::Lerror(ecode)) => {
                println!("attach {uid}: refused: {}", os_error(ecode))
            }
            Err(e) => return Err(e).context("Tattach"),
        }
        afid = NOFID;
    }
    Ok(())
}

/// The error an Rlerror carries.
fn os_error(ecode: u32) -> std::io::Error {
    std::io::Error::from_raw_os_error(i32::try_from(ecode).unwrap_or(libc::EIO))
}
