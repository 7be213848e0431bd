//! What `ffprobe` says of the container: the first video stream (the one vpdq hashes), its
//! size, pixel format, frame rates and decoder delay.

use serde::Deserialize;

use crate::VideoError;

/// The first video stream, as vpdq sees it (SPEC §2.1–2.5).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probed {
    pub format_name: String,
    pub nb_streams: u32,
    pub duration_secs: Option<f64>,
    pub stream_index: u32,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub pix_fmt: String,
    /// `avg_frame_rate` as a double, or `r_frame_rate` when either part of it is 0.
    pub frame_rate: f64,
    pub has_b_frames: u32,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    streams: Vec<Stream>,
    format: Option<Format>,
}

#[derive(Deserialize)]
struct Stream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    pix_fmt: Option<String>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    has_b_frames: Option<u32>,
}

#[derive(Deserialize)]
struct Format {
    format_name: Option<String>,
    nb_streams: Option<u32>,
    duration: Option<String>,
}

/// The entries asked of ffprobe (`-show_entries`).
pub(crate) const ENTRIES: &str = "stream=index,codec_type,codec_name,width,height,pix_fmt,avg_frame_rate,\
     r_frame_rate,has_b_frames:format=format_name,nb_streams,duration";

/// A rational `num/den` as FFmpeg prints it, when neither part is 0 (`av_q2d`: `num / (double)den`).
fn rational(text: Option<&str>) -> Option<f64> {
    let (num, den) = text?.split_once('/')?;
    let (num, den): (i64, i64) = (num.trim().parse().ok()?, den.trim().parse().ok()?);
    (num != 0 && den != 0).then(|| num as f64 / den as f64)
}

/// Parses ffprobe's JSON.
pub(crate) fn parse(json: &[u8]) -> Result<Probed, VideoError> {
    let output: Output = serde_json::from_slice(json)
        .map_err(|e| VideoError::Unreadable { reason: format!("ffprobe's answer: {e}") })?;
    let format =
        output.format.ok_or_else(|| VideoError::Unreadable { reason: "no container found".into() })?;
    let video = output
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("video"))
        .min_by_key(|s| s.index)
        .ok_or(VideoError::NoVideoStream)?;
    let frame_rate = rational(video.avg_frame_rate.as_deref())
        .or_else(|| rational(video.r_frame_rate.as_deref()))
        .filter(|fps| fps.is_finite() && *fps > 0.0)
        .ok_or(VideoError::NoFrameRate)?;
    Ok(Probed {
        format_name: format.format_name.unwrap_or_default(),
        nb_streams: format.nb_streams.unwrap_or(output.streams.len() as u32),
        duration_secs: format.duration.and_then(|d| d.parse::<f64>().ok()).filter(|d| d.is_finite()),
        stream_index: video.index,
        codec: video.codec_name.clone().unwrap_or_default(),
        width: video.width.unwrap_or(0),
        height: video.height.unwrap_or(0),
        pix_fmt: video.pix_fmt.clone().unwrap_or_default(),
        frame_rate,
        has_b_frames: video.has_b_frames.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_video_stream_is_taken_and_avg_frame_rate_falls_back_to_r_frame_rate() {
        let json = br#"{"streams": [
            {"index": 0, "codec_type": "audio", "codec_name": "opus", "avg_frame_rate": "0/0"},
            {"index": 2, "codec_type": "video", "codec_name": "mjpeg", "width": 8, "height": 8,
             "avg_frame_rate": "25/1"},
            {"index": 1, "codec_type": "video", "codec_name": "vp9", "width": 333, "height": 197,
             "has_b_frames": 0, "pix_fmt": "yuv420p", "avg_frame_rate": "0/0", "r_frame_rate": "30000/1001"}],
            "format": {"format_name": "matroska,webm", "nb_streams": 3, "duration": "12.019000"}}"#;
        let probed = parse(json).unwrap();
        assert_eq!(probed.stream_index, 1);
        assert_eq!((probed.width, probed.height, probed.codec.as_str()), (333, 197, "vp9"));
        assert_eq!(probed.frame_rate, 30000.0 / 1001.0);
        assert_eq!(probed.duration_secs, Some(12.019));
    }

    #[test]
    fn no_video_or_no_rate_is_an_error() {
        let audio = br#"{"streams": [{"index": 0, "codec_type": "audio"}], "format": {}}"#;
        assert!(matches!(parse(audio), Err(VideoError::NoVideoStream)));
        let still = br#"{"streams": [{"index": 0, "codec_type": "video", "avg_frame_rate": "0/0",
            "r_frame_rate": "0/1"}], "format": {}}"#;
        assert!(matches!(parse(still), Err(VideoError::NoFrameRate)));
        assert!(matches!(parse(b"{"), Err(VideoError::Unreadable { .. })));
    }
}
