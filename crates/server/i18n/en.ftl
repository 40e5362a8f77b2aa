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
login-method-qr = QR code
login-method-qr-description = No username: scan a QR code with the ConsentID app, or open the app on this phone. The same high assurance as the mobile app.
login-method-password = Username and password
login-method-password-description = Basic level: view the account, no certificates, no signing.

username-heading = Log in with the mobile app
username-label = username
username-hint = The e-mail address you registered with.
username-submit = Log in

qr-heading = Log in with a QR code
qr-instructions = Open ConsentID on your phone, tap “Scan QR code” and point the camera at this code. The code changes every second.
qr-alt = QR code for logging in with the ConsentID app
qr-same-phone = Is ConsentID on this phone?
qr-open-app = Open ConsentID
qr-status-waiting = Waiting for you to scan the code with ConsentID…
qr-status-taken = The code was scanned. Enter your PIN in ConsentID and tap “Authorise”.
wait-heading = Confirm the login in the ConsentID app
wait-instructions = Open ConsentID on your phone, enter your PIN, pick the code you see here and tap “Authorise”.
wait-code-label = Verification code
wait-time-left = Time left
wait-seconds = { $seconds } s
wait-cancel = Cancel
wait-check = Check status
wait-continue = Continue
login-continue-heading = You are logged in: on to the service
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
account-mail-failed = The e-mail to { $address } („{ $subject }“, { $date }) could not be delivered.
account-mail-retrying = The e-mail to { $address } („{ $subject }“, { $date }) has not been delivered yet; we keep trying.
device-state-active = active
device-state-pin_locked = locked after wrong PINs
device-state-revoked = revoked
services = services
service-cloud-certificate = Qualified electronic certificate in the cloud
logout = Log out

cloud-heading = Qualified electronic certificate in the cloud

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

cloud-panel = Manage the qualified electronic certificate in the cloud
cloud-issue = Issue
cloud-renew = Renew
cloud-revoke = Revoke
cloud-revoke-all = Revoke all certificates
account-status = Account status:
cloud-status-active = The qualified electronic certificate in the cloud is active.
cloud-status-none = You have no active qualified electronic certificate in the cloud.
cloud-serial = Serial number
cloud-valid-from = Valid from
cloud-valid-to = Valid until
cloud-renew-opens = Renewal is possible from { $date }, in the last { $days } days of validity.
cloud-issued = ✓ The certificate for signing in the cloud was issued successfully
cloud-renewed = ✓ The cloud certificate was renewed.
cloud-revoked = The cloud certificate was revoked and its key destroyed. The ConsentID app stays active.
cloud-revoked-all = All your certificates were revoked. The ConsentID app is no longer active; an officer must activate it again.
cloud-fresh-login = This action needs a login with the ConsentID mobile app within the last 15 minutes.
cloud-login-again = Log in with the mobile app
agreement-needs-consentid = An agreement shows your JMBG, so it opens only after a login with the ConsentID mobile app. A password login is not enough.
cloud-refused-active = You already have an active cloud certificate.
cloud-refused-none = You have no active cloud certificate.
cloud-refused-expired = The certificate has expired; issue a new one.
agreement-accept = Accept
agreement-cancel = Cancel
revoke-confirm-heading = Revoke the cloud certificate
revoke-confirm-text = A revoked certificate can no longer sign, and its key is destroyed for good. The ConsentID app stays active.
revoke-all-confirm-heading = Revoke all certificates
revoke-all-confirm-text = The cloud certificate and the ConsentID app's certificate will be revoked. ConsentID will no longer be active, pending requests will be cancelled and you will be logged out. An officer will have to activate ConsentID again.
confirm-yes = Yes, revoke
cloud-agreements = Signed agreements
cloud-agreement-number = Agreement no.

## A certificate operation approved in ConsentID (issue 22)
operation-title-issue = Issuing a qualified electronic certificate in the cloud
operation-title-renew = Renewing the qualified electronic certificate in the cloud
operation-title-revoke = Revoking the qualified electronic certificate in the cloud
operation-title-revoke_all = Revoking all certificates and deactivating the ConsentID app
operation-heading = Approve in the ConsentID app
operation-pending = Open the ConsentID app on your phone, check the request, enter your PIN and tap “Authorise”. This page refreshes by itself.
operation-agreement = Agreement no. { $number }, fingerprint { $fingerprint }
operation-time-left = Time left: { $seconds } s
operation-failed-denied = The request was denied in the ConsentID app. Nothing was changed.
operation-failed-expired = The request expired before it was approved. Nothing was changed.
operation-failed-failed = The request was not approved. Nothing was changed.
operation-failed-refused = The action is no longer possible. Nothing was changed.

## Signing documents
service-sign = Document signing
sign-heading = Document signing
sign-intro = Choose the PDF documents to sign with your qualified electronic signature. You approve the signature in the ConsentID app: check the documents' names and fingerprints, enter your PIN and choose Authorise.
sign-documents = PDF documents
sign-limits = At most { $files } documents, up to { $max } MB each and { $total } MB in total.
sign-level = Signature level
sign-level-b-b = PAdES-B-B (basic signature)
sign-level-b-t = PAdES-B-T (with a timestamp)
sign-level-b-lt = PAdES-B-LT (with a timestamp and long-term validation data)
sign-submit = Sign
sign-pending = Approve the signature in the ConsentID app. This page refreshes by itself.
sign-time-left = Time left: { $seconds } s
sign-done = ✓ The documents are signed. Download the signed documents.
sign-document = Document
sign-fingerprint = Fingerprint (SHA-256)
sign-download = Download the signed document
sign-again = Sign other documents
sign-error-none = Choose at least one PDF document.
sign-error-too-many = At most { $max } documents can be signed at once.
sign-error-too-large = The document “{ $file }” is larger than { $max } MB.
sign-error-upload-too-large = The upload is too large: at most { $max } MB per document and { $total } MB in total.
sign-error-not-pdf = The file “{ $file }” is not a PDF document.
sign-error-corrupt = The document “{ $file }” is damaged or cannot be signed (for example, it is encrypted).
sign-error-form = The form was not sent correctly; please try again.
sign-error-rate-limited = Too many signing requests in a short time; please try again in a few minutes.
sign-error-consentid = Signing needs a login with the ConsentID mobile app.
sign-documents-need-consentid = Signed documents open only after a login with the ConsentID mobile app. A password login is not enough.
sign-error-no-certificate = You have no active qualified electronic certificate in the cloud. Issue one in the service Qualified electronic certificate in the cloud.
sign-error-no-device = The ConsentID app is not active; ask an officer to re-activate it.
sign-failed-denied = The signature was denied in the ConsentID app. The documents were not signed.
sign-failed-expired = The signing request expired before it was approved. The documents were not signed.
sign-failed-locked = The PIN is locked after 5 wrong attempts; the documents were not signed.
sign-failed-no-device = The ConsentID app is no longer active; the documents were not signed.
sign-failed-revoked = The certificate is revoked; the documents were not signed.
sign-failed-certificate-expired = The certificate has expired; the documents were not signed.
sign-failed-interrupted = Signing was interrupted; please try again.
sign-failed-failed = Signing failed; please try again.

## OAuth 2.0 for the CSC API
oauth-heading = Access permission
oauth-text = The application “{ $client }” on your computer asks for access to your remote signing certificates.
oauth-client = Application
oauth-redirect = Return address
oauth-each-signature = You will still approve every signature in the ConsentID app, with your PIN.
oauth-allow = Allow
oauth-deny = Deny
oauth-login-first = To allow “{ $client }” access, log in with the ConsentID mobile app; after the login you come back here.
oauth-invalid = The access request is not valid.

# Registration e-mails (sent in Serbian and English together).
mail-register-verify-subject = Confirm your e-mail address
mail-register-verify-text = Dear { $name }, to confirm your address and finish the registration, open { $link } (valid { $hours } hours).
mail-register-existing-subject = Registration
mail-register-existing-text = Someone tried to register a new account with this address, which already has one. If it was you, log in at { $login }. If it was not, you need not do anything: nothing was changed.

# The agreement's lengths of time (its articles 4 and 5), each in the form its number takes.
agreement-validity-years = { $count ->
    [one] { $count } year
   *[other] { $count } years
}
agreement-validity-days = { $count ->
    [one] { $count } day
   *[other] { $count } days
}
# After "in" of the renewal window.
agreement-renewal-window = { $count ->
    [one] the last day
   *[other] the last { $count } days
}

# The cloud certificate's e-mails (each follows its Serbian text).
mail-cloud-issued-subject = Agreement and qualified electronic certificate in the cloud
mail-cloud-issued-text = Dear { $name }, your qualified electronic certificate in the cloud was issued (serial number { $serial }), valid until { $until }. The agreement number { $number } is attached.
mail-cloud-renewed-subject = Cloud certificate renewed
mail-cloud-renewed-text = Your cloud certificate was renewed: new serial number { $serial }, valid until { $until }. The previous one ({ $old }) was revoked.
mail-cloud-revoked-subject = Cloud certificate revoked
mail-cloud-revoked-text = Your cloud certificate (serial number { $serial }) was revoked and its key destroyed. ConsentID stays active.
mail-cloud-revoked-all-subject = All certificates revoked
mail-cloud-revoked-all-text = All your certificates were revoked, ConsentID's included, which is no longer active. To activate it again, contact an officer.

# The service agreement (the seed's step 9), as the authority fills it in and the PDF shows it: the
# first line is the title, every other line a paragraph. $representative is
# agreement-representative when the settings name one, else nothing.
agreement-text =
    SERVICE AGREEMENT ON ISSUING A QUALIFIED ELECTRONIC CERTIFICATE FOR A QUALIFIED ELECTRONIC SIGNATURE AT A DISTANCE

    Under art. 30(1) of the Law on Electronic Document, Electronic Identification and Trust Services in Electronic Business (Official Gazette RS 94/17 and 52/21) and art. 3 of the Decree on conditions for providing qualified trust services (Official Gazette RS 37/18), on { $date }, under number { $number }, this agreement is made between:

    1. { $provider }, { $address }, tax id { $tax_id }, registration number { $registration }{ $representative } (hereinafter: the Office), and
    2. the User: { $user_name }, personal number { $jmbg } (hereinafter: the User).

    Article 1. Subject
    The Office is entered in the Register of qualified trust service providers for managing a qualified device for creating electronic signatures at a distance. This agreement covers issuing a qualified electronic certificate to the User and managing the User's signing key in the Office's qualified device, so that the User can make qualified electronic signatures at a distance.

    Article 2. Obligations of the Office
    The Office generates the key pair in the qualified device, keeps the private key so that it never leaves the device, uses it only with the User's approval given in the ConsentID app, publishes the certificate's status (certificate revocation list and OCSP) and acts under the Certificate Policy and the Practice Statement.

    Article 3. Obligations of the User and sole control
    The User keeps the ConsentID PIN secret, does not hand the device to others, reviews every signing request before approving it and revokes the certificate without delay on suspecting misuse. Only the User approves each use of the key.

    Article 4. Validity
    The certificate is valid for { $validity } from the day it is issued.

    Article 5. Renewal
    The User may renew the certificate in { $renewal } of its validity; a renewal generates a new key pair and revokes the previous certificate.

    Article 6. Revocation
    The User may revoke the certificate on the Portal at any time. Revoking all certificates also revokes the certificate of the ConsentID app, which then stops being active. The Office revokes the certificate in the cases the law prescribes.

    Article 7. Personal data
    The Office processes the User's personal data (name, surname, personal number, e-mail address) only to provide the service, under the Law on Personal Data Protection, and keeps it for the periods prescribed for qualified trust service providers.

    Article 8. Complaints
    The User sends complaints about the Office's work by e-mail or in writing to the Office's address; the Office answers within 15 days.

    Article 9. Final provisions
    The agreement is made by acceptance on the Electronic Identification Portal and takes effect on the day the certificate is issued. A copy of the agreement is sent to the User by e-mail.
agreement-representative = , represented by { $name }
agreement-footer = Electronic Identification Portal

# The OpenID provider's consent page (issue 23)
oidc-heading = Log in to a service
oidc-text = The service “{ $client }” asks you to log in with your account and to receive these data:
oidc-claim-sub = an identifier of your account, its own for this service
oidc-claim-given-name = your given name
oidc-claim-family-name = your surname
oidc-claim-email = your e-mail address
oidc-claim-email-verified = whether your e-mail address is verified
oidc-claim-jmbg = your JMBG (personal identification number)
oidc-remembered = Your consent is remembered; you can withdraw it on your account page.
oidc-allow = Allow
oidc-deny = Deny
oidc-login-first = To log in to “{ $client }”, log in to the portal first: with the ConsentID mobile app, its QR code, or a password; after the login you come back here.
oidc-transaction-login = “{ $client }” asks you to approve: “{ $text }”. Log in with the ConsentID mobile app by your e-mail address: the app shows this text, and approving with your PIN confirms it. After the login you come back here.
oidc-invalid = The login request is not valid.
account-consents = Services you log in to with this account
account-no-consents = No service has your consent to log in yet.
account-withdraw-consent = Withdraw consent
oidc-logout-heading = Log out
oidc-logout-text = The service “{ $client }” asks you to log out of the portal. Logging out also logs you out of every service you logged in to in this session.
oidc-logout-text-portal = Logging out logs you out of the portal and of every service you logged in to in this session.
oidc-logout-stay = Stay logged in
