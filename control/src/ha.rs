//! From the configuration to a board's hot-backup settings (docs/decisions/0007).

use std::net::SocketAddr;

use ha_sync::node::Settings;

use crate::config::{Config, Secret};
use crate::plan::Plan;

/// A digest of a whole configuration, as it prints (the first 8 bytes of its SHA-256):
/// two boards that run the same configuration have the same digest.
pub fn digest(c: &Config) -> u64 {
    use sha2::Digest;
    let h = sha2::Sha256::digest(crate::display::render(c).as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("32 bytes"))
}

/// The HA settings of `slot`, with `secret` (the configuration's key as
/// `crate::secret::resolve` read it): None when it runs alone (no location pairs it
/// with another board, or it has no `ha-address`); an error when the pairing cannot
/// work.
pub fn settings(c: &Config, p: &Plan, slot: u32, secret: Option<&Secret>) -> Result<Option<Settings>, String> {
    let Some(sp) = p.slots.get(&slot) else { return Ok(None) };
    let Some(&peer) = sp.peers.iter().next() else { return Ok(None) };
    if sp.peers.len() > 1 {
        return Err(format!(
            "slot {slot} is paired with slots {:?}; a board backs up one peer (one service-location pair per board)",
            sp.peers
        ));
    }
    let me = &c.slots[&slot];
    let Some(bind) = me.ha_address else { return Ok(None) };
    let peer_addr: SocketAddr = c
        .slots
        .get(&peer)
        .and_then(|s| s.ha_address)
        .ok_or_else(|| format!("slot {peer}, the peer of slot {slot}, has no ha-address"))?;
    let secret = secret.cloned().ok_or_else(|| {
        "service-ha preshared-key is required for hot backup: the HA channel is authenticated".to_string()
    })?;
    if c.slots.get(&peer).map(|s| s.cores.len().max(1)) != Some(me.cores.len().max(1)) {
        return Err(format!(
            "slots {slot} and {peer} must have as many worker cores: sessions are installed on the worker that owns their port block"
        ));
    }
    Ok(Some(Settings {
        slot: slot as u16,
        // Only the peer's messages are believed.
        peer_slot: peer as u16,
        bind,
        peer: peer_addr,
        witness: me.softwire_if.clone().map(|i| (i, bind.port().wrapping_add(1))),
        // A board whose softwire or Internet link is down gives its locations up.
        links: me.softwire_if.iter().chain(&me.internet_if).cloned().collect(),
        secret,
        // Every location of the slot has a role of its own, in the engine's order.
        locations: crate::plan::slot_locations(sp)
            .into_iter()
            .map(|id| ha_sync::node::Location { id, preferred: sp.active_for.contains(&id) })
            .collect(),
        // The peer sends the softwire frames of this board's locations on to it.
        softwire_mac: me.softwire_if.as_deref().and_then(crate::nexthop::interface_mac).unwrap_or_default(),
        shares: crate::plan::engine_config(c, p, slot)
            .map(|e| dataplane::config::PoolShares::of(&e))
            .unwrap_or_default(),
        hot_backup: c.ha.hot_backup,
        delay_secs: c.ha.delay_time,
        preempt_ms: c.ha.preempt_time as u64 * 1000,
        heartbeat_ms: c.ha.heartbeat_ms as u64,
        dead_count: c.ha.dead_count,
        queue: 16_384,
        rto_ms: (c.ha.heartbeat_ms as u64).clamp(20, 200),
        pace_per_ms: 32,
        config_digest: digest(c),
        // Records on the wire name instances by id, in this board's engine order.
        instance_ids: crate::plan::engine_config(c, p, slot)
            .map(|e| e.instances.iter().filter_map(|i| p.instances.get(&i.name).map(|ip| ip.id)).collect())
            .unwrap_or_default(),
        notify: c.ha.notify.clone(),
    }))
}
