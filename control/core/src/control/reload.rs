//! The control thread's side of `reload` (the command, or the reload flag SIGHUP sets): the
//! [`ConfigSource`] reads and checks the file, the builder applies the configured tables as one
//! batch ([`Builder::reload`](crate::builder::Builder::reload)), then the RIB and batching take
//! their new timing. A refusal at any step changes nothing: the source's checks change nothing,
//! the builder's reload is all-or-nothing, and the timing is set only after it succeeded.

use ecmp_proto::ctl::{ReloadReply, Reply};
use ecmp_tables::Snapshot;

use super::{ConfigSource, Control, bump, set_text};
use crate::builder::NextHopResolver;

impl<R: NextHopResolver, P: FnMut(Snapshot)> Control<R, P> {
    /// Reloads the config (`signal`: asked for by the reload flag) and answers as `reload` does.
    pub(super) fn reload(&mut self, signal: bool) -> Reply {
        let Some(mut source) = self.config_source.take() else {
            return Reply::error("this forwarder has no config file to reload");
        };
        let outcome = self.reload_from(source.as_mut());
        source.finished(&outcome, signal);
        self.config_source = Some(source);
        match outcome {
            Ok(reply) => Reply::ok(reply),
            Err(e) => Reply::error(e),
        }
    }

    fn reload_from(&mut self, source: &mut dyn ConfigSource) -> Result<ReloadReply, String> {
        let desired = source.load()?;
        // Feed changes already read go out first, so the reload is one snapshot of its own.
        self.build();
        let summary = self
            .builder
            .reload(&desired.tables)
            .map_err(|e| format!("{}: {e}", desired.origin))?;
        for error in self.builder.take_errors() {
            bump(&self.counters.build_errors);
            set_text(&self.counters.last_build_error, error.to_string());
        }
        self.rib.set_config(desired.rib);
        self.batch_window = desired.batch_window;
        let published = summary.snapshot.is_some();
        if let Some(snapshot) = summary.snapshot {
            self.publish_snapshot(snapshot, None);
            let c = |what: &str, n: &ecmp_proto::ctl::ReloadCounts| {
                format!("{what} +{} -{} ~{}", n.added, n.removed, n.changed)
            };
            let what = format!(
                "reload: {}, {}, {}",
                c("routes", &summary.routes),
                c("next hops", &summary.hops),
                c("groups", &summary.groups)
            );
            self.events.operator(what, self.generation());
        }
        Ok(ReloadReply {
            nexthops: summary.hops,
            groups: summary.groups,
            routes: summary.routes,
            settings: desired.settings,
            published,
            generation: self.generation(),
        })
    }
}

#[cfg(test)]
mod tests;
