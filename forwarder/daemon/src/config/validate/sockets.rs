//! `[control]` and `[feed]`: the two sockets share their path, mode, group and peer keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::nonzero_duration;
use crate::config::error::{ConfigError, Ctx};
use crate::config::schema::{
    Dur, GroupRef, RawControl, RawFeed, RawMetrics, RawSocket, gid_in_group_file,
};
use crate::config::spec::{ControlSpec, FeedSpec, MetricsSpec};
use crate::config::{
    DEFAULT_BATCH_WINDOW, DEFAULT_FEED_MAX_LINE, DEFAULT_MAX_CLIENTS, DEFAULT_REFRESH_TIMEOUT,
    DEFAULT_SOCKET_MODE, DEFAULT_STALE_TIME, DEFAULT_STARTUP_HOLD, GROUP_FILE, MAX_FEED_MAX_LINE,
    MAX_SOCKET_MODE, MAX_SOCKET_PATH_LEN, MIN_FEED_MAX_LINE,
};

/// A socket path resolved against the config's directory, checked to fit `sun_path`.
fn socket_path(
    ctx: &Ctx<'_>,
    raw: Spanned<PathBuf>,
    key: &str,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<PathBuf, ConfigError> {
    let span = raw.span();
    let path = resolve(raw.into_inner());
    let len = path.as_os_str().len();
    if len == 0 {
        return Err(ctx.invalid(span, key, "empty path"));
    }
    if len > MAX_SOCKET_PATH_LEN {
        return Err(ctx.invalid(
            span,
            key,
            format!(
                "{} is {len} bytes; a Unix socket path holds at most {MAX_SOCKET_PATH_LEN}",
                path.display()
            ),
        ));
    }
    Ok(path)
}

/// The keys `[control]` and `[feed]` share, validated.
struct SocketKeys {
    path: PathBuf,
    mode: u32,
    group: Option<u32>,
    allowed_uids: Vec<u32>,
    allowed_gids: Vec<u32>,
}

fn build_socket(
    ctx: &Ctx<'_>,
    table: &str,
    raw: RawSocket,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<SocketKeys, ConfigError> {
    let key = |k: &str| format!("{table}.{k}");
    let path = socket_path(ctx, raw.socket, &key("socket"), resolve)?;
    let mode = match &raw.mode {
        None => DEFAULT_SOCKET_MODE,
        Some(m) => match u32::try_from(*m.get_ref()) {
            Ok(bits) if bits <= MAX_SOCKET_MODE => bits,
            Ok(bits) => {
                return Err(ctx.invalid(
                    m.span(),
                    key("mode"),
                    format!(
                        "mode {bits:#o} sets bits beyond {MAX_SOCKET_MODE:#o} (write permission bits like 0o660)"
                    ),
                ));
            }
            Err(_) => {
                return Err(ctx.invalid(
                    m.span(),
                    key("mode"),
                    format!(
                        "mode {} is not permission bits (write one like 0o660)",
                        m.get_ref()
                    ),
                ));
            }
        },
    };
    let group = match raw.group {
        None => None,
        Some(g) => match g.get_ref() {
            GroupRef::Gid(gid) => Some(*gid),
            GroupRef::Name(name) => {
                let text = std::fs::read_to_string(GROUP_FILE).map_err(|e| {
                    ctx.invalid(
                        g.span(),
                        key("group"),
                        format!("cannot read {GROUP_FILE} to look up group {name:?}: {e}"),
                    )
                })?;
                let gid = gid_in_group_file(&text, name).ok_or_else(|| {
                    ctx.invalid(
                        g.span(),
                        key("group"),
                        format!(
                            "no group named {name:?} in {GROUP_FILE} (give a numeric gid for groups from other sources)"
                        ),
                    )
                })?;
                Some(gid)
            }
        },
    };
    let ids = |list: Option<Vec<Spanned<u32>>>, k: &str| -> Result<Vec<u32>, ConfigError> {
        let list = list.unwrap_or_default();
        let mut out: Vec<u32> = Vec::with_capacity(list.len());
        for (j, id) in list.iter().enumerate() {
            if out.contains(id.get_ref()) {
                return Err(ctx.invalid(
                    id.span(),
                    format!("{table}.{k}[{j}]"),
                    format!("{} is listed twice", id.get_ref()),
                ));
            }
            out.push(*id.get_ref());
        }
        Ok(out)
    };
    Ok(SocketKeys {
        path,
        mode,
        group,
        allowed_uids: ids(raw.allowed_uids, "allowed_uids")?,
        allowed_gids: ids(raw.allowed_gids, "allowed_gids")?,
    })
}

pub(super) fn build_control(
    ctx: &Ctx<'_>,
    raw: Spanned<RawControl>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<ControlSpec, ConfigError> {
    let line = ctx.line(raw.span().start);
    let r = raw.into_inner();
    let max_clients = match &r.max_clients {
        None => DEFAULT_MAX_CLIENTS,
        Some(m) if *m.get_ref() >= 1 => *m.get_ref(),
        Some(m) => {
            return Err(ctx.invalid(
                m.span(),
                "control.max_clients",
                "max_clients must be at least 1",
            ));
        }
    };
    let socket = RawSocket {
        socket: r.socket,
        mode: r.mode,
        group: r.group,
        allowed_uids: r.allowed_uids,
        allowed_gids: r.allowed_gids,
    };
    let s = build_socket(ctx, "control", socket, resolve)?;
    Ok(ControlSpec {
        socket: s.path,
        mode: s.mode,
        group: s.group,
        allowed_uids: s.allowed_uids,
        allowed_gids: s.allowed_gids,
        max_clients,
        line,
    })
}

pub(super) fn build_feed(
    ctx: &Ctx<'_>,
    raw: Spanned<RawFeed>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<FeedSpec, ConfigError> {
    let line = ctx.line(raw.span().start);
    let r = raw.into_inner();
    let max_line = match &r.max_line {
        None => DEFAULT_FEED_MAX_LINE,
        Some(m) if (MIN_FEED_MAX_LINE..=MAX_FEED_MAX_LINE).contains(m.get_ref()) => *m.get_ref(),
        Some(m) => {
            return Err(ctx.invalid(
                m.span(),
                "feed.max_line",
                format!(
                    "max_line {} is outside {MIN_FEED_MAX_LINE}..={MAX_FEED_MAX_LINE} bytes",
                    m.get_ref()
                ),
            ));
        }
    };
    // Zero is meaningful for these two: no batching, and paths of a down peer dropped at once.
    let zero_ok =
        |d: &Option<Spanned<Dur>>, default: Duration| d.as_ref().map_or(default, |d| d.get_ref().0);
    let (refresh_timeout, _) = nonzero_duration(
        ctx,
        &r.refresh_timeout,
        DEFAULT_REFRESH_TIMEOUT,
        "feed.refresh_timeout",
    )?;
    let batch_window = zero_ok(&r.batch_window, DEFAULT_BATCH_WINDOW);
    let stale_time = zero_ok(&r.stale_time, DEFAULT_STALE_TIME);
    let startup_hold = zero_ok(&r.startup_hold, DEFAULT_STARTUP_HOLD);
    let socket = RawSocket {
        socket: r.socket,
        mode: r.mode,
        group: r.group,
        allowed_uids: r.allowed_uids,
        allowed_gids: r.allowed_gids,
    };
    let s = build_socket(ctx, "feed", socket, resolve)?;
    Ok(FeedSpec {
        socket: s.path,
        mode: s.mode,
        group: s.group,
        allowed_uids: s.allowed_uids,
        allowed_gids: s.allowed_gids,
        max_line,
        batch_window,
        stale_time,
        refresh_timeout,
        startup_hold,
        line,
    })
}

/// `[metrics]`: `listen` must be an IP literal and a port (no name lookups at load time, and a
/// scraper needs a fixed port, so 0 is refused). Absent `listen`: no listener.
pub(super) fn build_metrics(
    ctx: &Ctx<'_>,
    raw: Spanned<RawMetrics>,
) -> Result<Option<MetricsSpec>, ConfigError> {
    let Some(listen) = raw.into_inner().listen else {
        return Ok(None);
    };
    let span = listen.span();
    let text = listen.into_inner();
    let addr: SocketAddr = text.parse().map_err(|_| {
        ctx.invalid(
            span.clone(),
            "metrics.listen",
            format!(
                "{text:?} is not an IP address and port (like \"127.0.0.1:9433\" or \"[::1]:9433\")"
            ),
        )
    })?;
    if addr.port() == 0 {
        return Err(ctx.invalid(
            span,
            "metrics.listen",
            "port 0 would pick a different port on every start; give the port Prometheus scrapes",
        ));
    }
    Ok(Some(MetricsSpec {
        listen: addr,
        line: ctx.line(span.start),
    }))
}
