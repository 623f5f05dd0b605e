//! `paygate console-user create NAME --scopes …` / `reset NAME` / `disable NAME` / `list`, and
//! `serve --sandbox`'s demo user (DESIGN.md §9).

use anyhow::Context;
use clap::Subcommand;

use crate::app::Application;
use crate::console_users::{self, SecondFactor};
use crate::domain::{ConsoleUserName, Scope};

#[derive(Subcommand)]
pub enum ConsoleUserCommand {
    /// Create a console user and print their one-time set-password link (valid 72 hours).
    /// Users holding `finance` or `privacy` enrol a TOTP app at their first sign-in.
    Create {
        name: String,
        /// Comma-separated: checkout, entitlements, finance, privacy.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
    /// A new set-password link for NAME: the old password stops working and every session of
    /// theirs ends now.
    Reset { name: String },
    /// Disable NAME: no sign-in from now on, and every open session is refused at its next
    /// request.
    Disable { name: String },
    /// The console users, their scopes and state.
    List,
}

fn name_of(text: &str) -> anyhow::Result<ConsoleUserName> {
    ConsoleUserName::parse(text).with_context(|| {
        format!("{text:?} is not a console user name (1 to 32 of a-z, 0-9, '.', '_', '-')")
    })
}

fn scopes_of(texts: &[String]) -> anyhow::Result<Vec<Scope>> {
    texts
        .iter()
        .map(|s| Scope::parse(s.trim()).with_context(|| format!("unknown scope {s:?}")))
        .collect()
}

/// The set-password address for a link's token.
fn link(app: &Application, token: &console_users::OneTime) -> String {
    format!(
        "{}/console/set-password?token={}",
        app.public_url(),
        token.0
    )
}

pub async fn run(app: Application, command: ConsoleUserCommand) -> anyhow::Result<()> {
    let state = app.state();
    let deps = console_users::Deps {
        db: &state.db,
        clock: state.clock.as_ref(),
    };
    match command {
        ConsoleUserCommand::Create { name, scopes } => {
            let name = name_of(&name)?;
            let scopes = scopes_of(&scopes)?;
            let token =
                console_users::create(&deps, &name, &scopes, SecondFactor::ByScopes).await?;
            println!("console user {name} created; send them this link (valid 72 hours, once):");
            println!("  {}", link(&app, &token));
        }
        ConsoleUserCommand::Reset { name } => {
            let name = name_of(&name)?;
            let token = console_users::reset(&deps, &name).await?;
            println!("password of {name} reset; send them this link (valid 72 hours, once):");
            println!("  {}", link(&app, &token));
        }
        ConsoleUserCommand::Disable { name } => {
            let name = name_of(&name)?;
            console_users::disable(&deps, &name).await?;
            println!("console user {name} disabled; their sessions have ended");
        }
        ConsoleUserCommand::List => {
            for u in crate::store::console::all_users(&state.db).await? {
                let scopes: Vec<&str> = u.scopes.iter().map(|s| s.name()).collect();
                let state = match (u.disabled_at, &u.password_hash, &u.totp_secret) {
                    (Some(_), _, _) => "disabled",
                    (None, None, _) => "password not set",
                    (None, Some(_), None) if u.totp_required => "TOTP not enrolled",
                    _ => "active",
                };
                println!("{}\t{}\t{state}", u.name, scopes.join(","));
            }
        }
    }
    Ok(())
}

/// `serve --sandbox`: a `demo` user with every scope and no second factor (no real money in
/// the sandbox), a new one-time password each start. Answers the password, shown once.
pub async fn sandbox_demo(app: &Application) -> anyhow::Result<String> {
    let state = app.state();
    let deps = console_users::Deps {
        db: &state.db,
        clock: state.clock.as_ref(),
    };
    let name = name_of("demo")?;
    let token =
        match console_users::create(&deps, &name, &Scope::ALL, SecondFactor::NotInSandbox).await {
            Ok(token) => token,
            Err(console_users::UsersError::Exists(_)) => console_users::reset(&deps, &name).await?,
            Err(e) => return Err(e.into()),
        };
    let password = console_users::OneTime::generate().0;
    console_users::set_password(&deps, &token.0, &password).await?;
    Ok(password)
}
