//! Seeded test pictures, made in memory: no image file is read or written.

/// A seeded picture with corners everywhere: value noise plus rectangles.
pub(super) fn picture(seed: u64, width: usize, height: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let grid: Vec<u8> = (0..17 * 17).map(|_| next() as u8).collect();
    let rects: Vec<[usize; 5]> = (0..40)
        .map(|_| {
            let (x, y) = (next() as usize % width, next() as usize % height);
            [
                x,
                y,
                8 + next() as usize % (width / 5),
                8 + next() as usize % (height / 5),
                next() as usize % 256,
            ]
        })
        .collect();
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let (gx, gy) = (x * 16 / width, y * 16 / height);
            let mut v = i32::from(grid[gy * 17 + gx]) / 2 + 40;
            for &[rx, ry, rw, rh, shade] in &rects {
                if (rx..rx + rw).contains(&x) && (ry..ry + rh).contains(&y) {
                    v = shade as i32;
                }
            }
            let v = v.clamp(0, 255) as u8;
            rgb.extend_from_slice(&[v, v.wrapping_add(30), 255 - v]);
        }
    }
    rgb
}
