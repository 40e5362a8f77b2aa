# English.
site-title = Electronic Identification Portal
skip-link = Skip to content
nav-login = Log in
nav-logout = Log out
nav-account = My account
lang-label = Language
footer = Office for IT and eGovernment · Nemanjina 11, Belgrade · open source (Apache-2.0)

home-heading = Welcome to the Electronic Identification Portal
home-intro = Here you get a qualified electronic certificate in the cloud and sign documents remotely. You log in with the ConsentID mobile app: enter your PIN and confirm the request with the “Authorise” button.
home-start = To begin, choose “Log in” in the top right corner.

login-methods-heading = Choose how to log in
login-method-mobile = Mobile app
login-method-mobile-description = Log in with the ConsentID app: high assurance, needed to issue certificates and to sign.
login-method-password = Username and password
login-method-password-description = Basic level: view the account, no certificates, no signing.

username-heading = Log in with the mobile app
username-label = username
username-hint = The e-mail address you registered with.
username-submit = Log in

wait-heading = Confirm the login in the ConsentID app
wait-instructions = Open ConsentID on your phone, enter your PIN, pick the code you see here and tap “Authorise”.
wait-code-label = Verification code
wait-time-left = Time left
wait-seconds = { $seconds } s
wait-cancel = Cancel
wait-check = Check status
wait-continue = Continue
wait-retry = Try again
wait-status-pending = Waiting for your confirmation in the app…
wait-status-approved = Login confirmed. Logging you in…
wait-status-denied = The login was refused in the app.
wait-status-expired = The time to confirm is over. Please try again.
wait-status-pin-locked = ConsentID is locked after five wrong PINs. It must be activated again by an officer.
wait-status-wrong-code = A wrong verification code was picked in the app, so the login was refused.
wait-status-cancelled = The login was cancelled.
wait-status-superseded = A newer login was started; this one is no longer valid.
wait-status-device-revoked = ConsentID was deactivated. It must be activated again.
wait-status-failed = The login failed. Please try again.

account-heading = Account details
account-name = Name
account-email = E-mail address
account-assurance = Assurance level
account-login-method = Logged in with
assurance-high = high (identity proofed)
assurance-basic = basic
login-method-consentid = the ConsentID mobile app
login-method-password-short = username and password
account-devices = ConsentID devices
account-no-devices = No activated devices.
account-device-activated = activated { $date }
device-state-active = active
device-state-pin_locked = locked after wrong PINs
device-state-revoked = revoked
services = services
service-cloud-certificate = Qualified electronic certificate in the cloud
logout = Log out

cloud-heading = Qualified electronic certificate in the cloud
cloud-unavailable = Managing the cloud certificate is not available in this version of the portal yet.

password-heading = Log in with username and password
password-label = password
password-submit = Log in

error-heading = Error
error-back = Back to the home page
error-rate-limited = Too many attempts. Please try again in a few minutes.
error-invalid-username = Please enter a valid e-mail address.
error-form-expired = The form has expired. Please try again.
error-not-found = Page not found.
error-login-required = Please log in to continue.
error-password = Wrong username or password.
error-internal = Something went wrong. Request number: { $id }

register-heading = Registration
register-intro = Registering gives you a basic account. Issuing certificates and signing need an identity check by an officer and the ConsentID app.
register-link = No account yet? Register
register-email = e-mail address
register-password = password (at least 10 characters)
register-given-name = given name
register-surname = surname
register-jmbg = JMBG (personal number)
register-submit = Register
register-sent-heading = Check your e-mail
register-sent = We have sent a message with a link to confirm your address. Open it to finish the registration.
error-field-email = Please enter a valid e-mail address.
error-field-password = The password must have at least 10 characters.
error-field-given_name = Please enter your given name (up to 64 characters).
error-field-surname = Please enter your surname (up to 64 characters).
error-field-jmbg = The JMBG is not valid: 13 digits, a real date and the check digit.
verify-heading = E-mail confirmation
verify-done = Your address is confirmed. You can now log in with your username and password.
verify-failed = The confirmation link is not valid or has expired.
