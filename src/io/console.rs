//! Readable lines for a person watching `crowdpark demo`.

use crate::model::parse_fen;
use crate::output::{AlertKind, Output, ParkingStatus};
use crate::time::UtcOffset;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

/// Turns outputs into lines: every alert; a car park's status when it changes
/// (at most once a simulated minute per car park, so a car park hovering between
/// full and almost full does not flood the screen); one sales line per window.
pub struct ConsolePrinter<W: Write> {
    out: W,
    offset: UtcOffset,
    lot_printed: HashMap<String, (ParkingStatus, i64)>,
    sales: BTreeMap<String, SalesWindow>,
}

#[derive(Default)]
struct SalesWindow {
    end: String,
    transactions: u64,
    net_fen: i64,
    best: Option<(i64, String)>,
}

const LOT_PRINT_INTERVAL_MS: i64 = 60_000;

impl<W: Write> ConsolePrinter<W> {
    /// Prints times on the clock of the catalog's first district.
    pub fn new(out: W, catalog: &crate::model::Catalog) -> Self {
        ConsolePrinter {
            out,
            offset: catalog.first_district().utc_offset,
            lot_printed: HashMap::new(),
            sales: BTreeMap::new(),
        }
    }

    fn clock(&self, ts_ms: i64) -> String {
        let local = (ts_ms.div_euclid(1000) + self.offset.seconds as i64).rem_euclid(86_400);
        format!(
            "{:02}:{:02}:{:02}",
            local / 3600,
            local / 60 % 60,
            local % 60
        )
    }

    fn clock_of(&self, rfc3339: &str) -> String {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .map(|d| self.clock(d.timestamp_millis()))
            .unwrap_or_else(|_| rfc3339.to_string())
    }

    pub fn print(&mut self, outputs: &[Output]) -> std::io::Result<()> {
        for o in outputs {
            match o {
                Output::Alert(a) if a.kind == AlertKind::Level => {
                    let tag = a.level.as_str().to_uppercase();
                    writeln!(
                        self.out,
                        "{}  {:<8} {:<24} {} → {}  {:.2} p/m² ({} people on {} m²)",
                        self.clock(a.ts_ms),
                        tag,
                        a.zone,
                        a.previous,
                        a.level,
                        a.density,
                        a.people,
                        a.area_m2
                    )?;
                }
                Output::Alert(a) => {
                    writeln!(
                        self.out,
                        "{}  FORECAST {:<24} red expected in {} min (now {}, {:.2} p/m² and rising)",
                        self.clock(a.ts_ms),
                        a.zone,
                        a.red_in_s.unwrap_or(0).div_ceil(60),
                        a.level,
                        a.density
                    )?;
                }
                Output::Availability(a) => {
                    let due = match self.lot_printed.get(&a.id) {
                        None => true,
                        Some((status, at)) => {
                            *status != a.status && a.observed_ms >= at + LOT_PRINT_INTERVAL_MS
                        }
                    };
                    if due {
                        self.lot_printed
                            .insert(a.id.clone(), (a.status, a.observed_ms));
                        let status = serde_json::to_value(a.status).expect("serialisable");
                        writeln!(
                            self.out,
                            "{}  PARKING  {:<24} {:<15} {:>4}/{:<4} free  {}",
                            self.clock(a.observed_ms),
                            a.id,
                            status.as_str().unwrap_or("?"),
                            a.available_spot_number,
                            a.total_spot_number,
                            serde_json::to_value(a.occupancy_trend)
                                .expect("serialisable")
                                .as_str()
                                .unwrap_or("?")
                        )?;
                    }
                }
                Output::Payments(p) => {
                    let fen = parse_fen(&p.figures.amount).unwrap_or(0);
                    let w = self.sales.entry(p.window_start.clone()).or_default();
                    w.end = p.window_end.clone();
                    w.transactions += p.figures.transactions as u64;
                    w.net_fen += fen;
                    if w.best.as_ref().is_none_or(|(f, _)| fen > *f) {
                        w.best = Some((fen, p.zone.clone()));
                    }
                }
                _ => {}
            }
        }
        self.out.flush()
    }

    /// Prints the district's sales of every window that closed at least
    /// `settle_ms` before `now_ms`: by then every partition has reported it.
    pub fn flush_sales(&mut self, now_ms: i64, settle_ms: i64) -> std::io::Result<()> {
        while let Some(entry) = self.sales.first_entry() {
            let end = chrono::DateTime::parse_from_rfc3339(&entry.get().end)
                .map_or(i64::MIN, |d| d.timestamp_millis());
            if end + settle_ms > now_ms {
                break;
            }
            let (start, w) = entry.remove_entry();
            self.print_sales(&start, &w)?;
        }
        self.out.flush()
    }

    fn print_sales(&mut self, start: &str, w: &SalesWindow) -> std::io::Result<()> {
        let (best_fen, best_zone) = w.best.clone().unwrap_or_default();
        writeln!(
            self.out,
            "{}  SALES    {}–{}  {} transactions, ¥{} net; busiest {} (¥{})",
            self.clock_of(&w.end),
            self.clock_of(start),
            self.clock_of(&w.end),
            w.transactions,
            yuan(w.net_fen),
            best_zone,
            yuan(best_fen)
        )
    }

    /// Prints windows still held back (at the end of a run).
    pub fn finish(&mut self) -> std::io::Result<()> {
        while let Some((start, w)) = self.sales.pop_first() {
            self.print_sales(&start, &w)?;
        }
        self.out.flush()
    }

    pub fn line(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(self.out, "{text}")?;
        self.out.flush()
    }
}

/// Fen as yuan with thousands separators: `1234567` → `12,345.67`.
fn yuan(fen: i64) -> String {
    let plain = crate::model::format_fen(fen);
    let (sign, rest) = plain
        .strip_prefix('-')
        .map_or(("", plain.as_str()), |r| ("-", r));
    let (int, frac) = rest.split_once('.').expect("format_fen writes a point");
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}{grouped}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::yuan;

    #[test]
    fn groups_thousands() {
        assert_eq!(yuan(62_674_157), "626,741.57");
        assert_eq!(yuan(-100_000), "-1,000.00");
        assert_eq!(yuan(5), "0.05");
    }
}
