// QR scanning from the camera: BarcodeDetector when the browser has it, else jsQR on frames
// drawn to a canvas. Resolves to a stop function; calls onText once with the decoded text.
import jsQR from 'jsqr';

export async function startScanner(video, onText) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: 'environment' } }, audio: false,
  });
  video.srcObject = stream;
  await video.play().catch(() => {});
  let stopped = false;
  let detector = null;
  if ('BarcodeDetector' in window) {
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      if (formats.includes('qr_code')) {
        detector = new window.BarcodeDetector({ formats: ['qr_code'] });
      }
    } catch {
      detector = null;
    }
  }
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const stop = () => {
    stopped = true;
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  };
  const frame = async () => {
    if (stopped) return;
    let text = null;
    if (video.readyState >= 2 && video.videoWidth > 0) {
      if (detector) {
        const codes = await detector.detect(video).catch(() => []);
        if (codes.length) text = codes[0].rawValue;
      } else {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        ctx.drawImage(video, 0, 0);
        const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const code = jsQR(img.data, img.width, img.height, { inversionAttempts: 'dontInvert' });
        if (code && code.data) text = code.data;
      }
    }
    if (text && !stopped) {
      stop();
      onText(text);
      return;
    }
    setTimeout(frame, 150);
  };
  frame();
  return stop;
}
