//! Coalescing a device's points into as few read requests as possible.

use super::config::{ModbusPoint, Table};

/// Registers one read may ask for (Modbus limit for functions 3 and 4).
pub(crate) const MAX_REGISTERS: u16 = 125;
/// Bits one read may ask for (functions 1 and 2).
pub(crate) const MAX_BITS: u16 = 2000;

/// One read request: a contiguous run of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) table: Table,
    pub(crate) start: u16,
    pub(crate) count: u16,
    /// Indices of the points (into the device's point list) it covers.
    pub(crate) points: Vec<usize>,
}

/// Groups points into blocks: same table, contiguous (or overlapping)
/// addresses, at most `MAX_REGISTERS` registers / `MAX_BITS` bits each.
/// Gaps are never read: a gap may be an illegal address on the device.
pub(crate) fn plan(points: &[ModbusPoint]) -> Vec<Block> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].table, points[i].address));
    let mut blocks: Vec<Block> = Vec::new();
    for i in order {
        let p = &points[i];
        let (start, end) = (
            u32::from(p.address),
            u32::from(p.address) + u32::from(p.span()),
        );
        let limit = u32::from(if p.table.is_bits() {
            MAX_BITS
        } else {
            MAX_REGISTERS
        });
        if let Some(b) = blocks.last_mut() {
            let b_end = u32::from(b.start) + u32::from(b.count);
            let new_end = b_end.max(end);
            if b.table == p.table && start <= b_end && new_end - u32::from(b.start) <= limit {
                b.count = (new_end - u32::from(b.start)) as u16;
                b.points.push(i);
                continue;
            }
        }
        blocks.push(Block {
            table: p.table,
            start: p.address,
            count: p.span(),
            points: vec![i],
        });
    }
    blocks
}

/// One block per point, for when a coalesced read draws an exception and
/// the bridge needs to find out which point the device objects to.
pub(crate) fn split(block: &Block, points: &[ModbusPoint]) -> Vec<Block> {
    block
        .points
        .iter()
        .map(|&i| Block {
            table: points[i].table,
            start: points[i].address,
            count: points[i].span(),
            points: vec![i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Access;
    use crate::modbus::config::{ByteOrder, DataType, WordOrder};

    fn pt(table: Table, address: u16, ty: DataType) -> ModbusPoint {
        ModbusPoint {
            name: format!("{address}"),
            table,
            address,
            data_type: Some(ty),
            length: None,
            word_order: WordOrder::Big,
            byte_order: ByteOrder::Big,
            scale: None,
            offset: None,
            unit: None,
            access: Access::Read,
            write_multiple: false,
            writers: None,
        }
    }

    #[test]
    fn contiguous_points_share_a_request_and_gaps_split() {
        let pts = vec![
            pt(Table::InputRegister, 2, DataType::F32),
            pt(Table::InputRegister, 0, DataType::F32),
            pt(Table::InputRegister, 10, DataType::U16),
            pt(Table::HoldingRegister, 4, DataType::U16),
            pt(Table::Coil, 0, DataType::Bool),
            pt(Table::Coil, 1, DataType::Bool),
        ];
        let blocks = plan(&pts);
        let shape: Vec<(Table, u16, u16, Vec<usize>)> = blocks
            .iter()
            .map(|b| (b.table, b.start, b.count, b.points.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (Table::Coil, 0, 2, vec![4, 5]),
                (Table::InputRegister, 0, 4, vec![1, 0]),
                (Table::InputRegister, 10, 1, vec![2]),
                (Table::HoldingRegister, 4, 1, vec![3]),
            ]
        );
        assert_eq!(split(&blocks[1], &pts).len(), 2);
    }

    #[test]
    fn no_request_exceeds_125_registers() {
        let pts: Vec<ModbusPoint> = (0..100)
            .map(|i| pt(Table::HoldingRegister, i * 4, DataType::F64))
            .collect();
        let blocks = plan(&pts);
        assert!(blocks.iter().all(|b| b.count <= MAX_REGISTERS));
        assert_eq!(blocks.iter().map(|b| b.points.len()).sum::<usize>(), 100);
        assert_eq!(blocks[0].count, 124);
    }
}
