//! The namespace table (`--list`), one row per namespace, as lsns prints it.

use std::io::{self, Write};

use super::columns::{Column, Row};
use super::escape::{escape, escape_raw};
use crate::inventory::{Inventory, Namespace};

/// Layout switches shared by the tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout {
    pub noheadings: bool,
    pub raw: bool,
}

/// Writes the namespace table for `namespaces` with `columns`.
pub fn write(
    out: &mut impl Write,
    inventory: &Inventory,
    namespaces: &[&Namespace],
    columns: &[&Column],
    layout: Layout,
) -> io::Result<()> {
    let cells: Vec<Vec<String>> = namespaces
        .iter()
        .map(|ns| {
            let row = Row {
                inventory,
                ns,
                first: inventory.first_task(ns.key),
            };
            columns.iter().map(|c| cell(&(c.value)(&row), layout)).collect()
        })
        .collect();
    let header: Vec<String> = columns.iter().map(|c| c.name.to_string()).collect();
    let rows = (!layout.noheadings).then_some(&header).into_iter().chain(cells.iter());
    write_rows(
        out,
        rows,
        &columns.iter().map(|c| c.right_align).collect::<Vec<_>>(),
        layout.raw,
    )
}

/// Escapes one cell; `-` stands for an empty value in raw output so columns
/// stay countable.
pub fn cell(text: &str, layout: Layout) -> String {
    if layout.raw {
        if text.is_empty() {
            "-".to_string()
        } else {
            escape_raw(text).into_owned()
        }
    } else {
        escape(text).into_owned()
    }
}

/// Writes rows of escaped cells, aligned unless `raw`. The last column is
/// never padded, so long command lines do not widen every row.
pub fn write_rows<'a>(
    out: &mut (impl Write + ?Sized),
    rows: impl Iterator<Item = &'a Vec<String>> + Clone,
    right_align: &[bool],
    raw: bool,
) -> io::Result<()> {
    let mut widths = vec![0usize; right_align.len()];
    if !raw {
        for row in rows.clone() {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let last = right_align.len().saturating_sub(1);
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            if raw {
                line.push_str(cell);
                continue;
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right_align[i] {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if i != last {
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
