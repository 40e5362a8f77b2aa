// The entry of `scan.js`, the QR scanner's own bundle: loaded by app.js only when the camera is
// opened (jsQR is most of the bytes), it hands the scanner to the app.
import { startScanner } from './scan.js';

window.ConsentIDScanner = { startScanner };
