# Serbian, Cyrillic: the portal's first language. The Latin catalogue is transliterated from
# this one (crates/server/src/i18n.rs), so both always have the same messages.
site-title = Портал за електронску идентификацију
skip-link = Прескочи на садржај
nav-login = Пријава
nav-logout = Одјава
nav-account = Мој налог
lang-label = Језик
footer = Канцеларија за информационе технологије и електронску управу · Немањина 11, Београд · отворени код (Apache-2.0)

home-heading = Добродошли на Портал за електронску идентификацију
home-intro = На порталу добијате квалификовани електронски сертификат у клауду и потписујете документе на даљину. Пријављујете се мобилном апликацијом ConsentID: унесете ПИН и потврдите захтев дугметом „Ауторизовати”.
home-start = Да бисте почели, изаберите „Пријава” у горњем десном углу.

login-methods-heading = Изаберите начин пријаве
login-method-mobile = Мобилна апликација
login-method-mobile-description = Пријава апликацијом ConsentID: висок ниво поузданости, потребан за издавање сертификата и потписивање.
login-method-qr = QR код
login-method-qr-description = Без корисничког имена: скенирајте QR код апликацијом ConsentID или је отворите на овом телефону. Исти висок ниво као мобилна апликација.
login-method-password = Корисничко име и лозинка
login-method-password-description = Основни ниво: преглед налога, без издавања сертификата и потписивања.

username-heading = Пријава мобилном апликацијом
username-label = корисничко име
username-hint = Адреса електронске поште којом сте се регистровали.
username-submit = Пријавите се

qr-heading = Пријава QR кодом
qr-instructions = Отворите ConsentID на телефону, додирните „Скенирај QR код” и усмерите камеру на овај код. Код се мења сваке секунде.
qr-alt = QR код за пријаву апликацијом ConsentID
qr-same-phone = ConsentID је на овом телефону?
qr-open-app = Отвори ConsentID
qr-status-waiting = Чекамо да скенирате код апликацијом ConsentID…
qr-status-taken = Код је скениран. Унесите ПИН у апликацији ConsentID и додирните „Ауторизовати”.
wait-heading = Потврдите пријаву у апликацији ConsentID
wait-instructions = Отворите ConsentID на телефону, унесите свој ПИН и изаберите код који видите овде, па додирните „Ауторизовати”.
wait-code-label = Верификациони код
wait-time-left = Преостало време
wait-seconds = { $seconds } с
wait-cancel = Откажи
wait-check = Провери стање
wait-continue = Настави
login-continue-heading = Пријављени сте: настављате на услугу
wait-retry = Покушајте поново
wait-status-pending = Чекамо потврду у апликацији…
wait-status-approved = Пријава је потврђена. Пријављујемо вас…
wait-status-denied = Пријава је одбијена у апликацији.
wait-status-expired = Време за потврду је истекло. Покушајте поново.
wait-status-pin-locked = Апликација ConsentID је закључана после пет погрешних ПИН-ова. Потребна је поновна активација код службеника.
wait-status-wrong-code = У апликацији је изабран погрешан верификациони код, па је пријава одбијена.
wait-status-cancelled = Пријава је отказана.
wait-status-superseded = Започета је нова пријава, ова више не важи.
wait-status-device-revoked = Апликација ConsentID је деактивирана. Потребна је поновна активација.
wait-status-failed = Пријава није успела. Покушајте поново.

account-heading = Подаци корисничког налога
account-name = Име и презиме
account-email = Адреса електронске поште
account-assurance = Ниво поузданости
account-login-method = Начин пријаве
assurance-high = висок (идентитет проверен)
assurance-basic = основни
login-method-consentid = мобилна апликација ConsentID
login-method-password-short = корисничко име и лозинка
account-devices = Уређаји ConsentID
account-no-devices = Нема активираних уређаја.
account-device-activated = активиран { $date }
account-mail-failed = Писмо на адресу { $address } („{ $subject }“, { $date }) није могло да буде испоручено.
account-mail-retrying = Писмо на адресу { $address } („{ $subject }“, { $date }) још није испоручено; покушавамо поново.
device-state-active = активан
device-state-pin_locked = закључан због погрешних ПИН-ова
device-state-revoked = опозван
services = услуге
service-cloud-certificate = Квалификовани електронски сертификат у клауду
logout = Одјава

cloud-heading = Квалификовани електронски сертификат у клауду

password-heading = Пријава корисничким именом и лозинком
password-label = лозинка
password-submit = Пријавите се

error-heading = Грешка
error-back = Назад на почетну страну
error-rate-limited = Превише покушаја. Покушајте поново за неколико минута.
error-invalid-username = Унесите исправну адресу електронске поште.
error-form-expired = Образац је истекао. Покушајте поново.
error-not-found = Страница није пронађена.
error-login-required = Пријавите се да бисте наставили.
error-password = Погрешно корисничко име или лозинка.
error-internal = Дошло је до грешке. Број захтева: { $id }

register-heading = Регистрација
register-intro = Регистрацијом добијате налог основног нивоа. За издавање сертификата и потписивање потребни су провера идентитета код службеника и апликација ConsentID.
register-link = Немате налог? Региструјте се
register-email = адреса електронске поште
register-password = лозинка (најмање 10 знакова)
register-given-name = име
register-surname = презиме
register-jmbg = ЈМБГ
register-submit = Региструјте се
register-sent-heading = Проверите пошту
register-sent = Послали смо поруку са везом за потврду адресе. Отворите је да бисте завршили регистрацију.
error-field-email = Унесите исправну адресу електронске поште.
error-field-password = Лозинка мора имати најмање 10 знакова.
error-field-given_name = Унесите име (до 64 знака).
error-field-surname = Унесите презиме (до 64 знака).
error-field-jmbg = ЈМБГ није исправан: 13 цифара, стваран датум и контролна цифра.
verify-heading = Потврда адресе електронске поште
verify-done = Адреса је потврђена. Сада се можете пријавити корисничким именом и лозинком.
verify-failed = Веза за потврду није исправна или је истекла.

cloud-panel = Управљај квалификованим електронским сертификатом у клауду
cloud-issue = Издај
cloud-renew = Обнови
cloud-revoke = Опозови
cloud-revoke-all = Опозови све сертификате
account-status = Статус корисничког налога:
cloud-status-active = Квалификовани електронски сертификат у клауду је активан.
cloud-status-none = Немате активан квалификовани електронски сертификат у клауду.
cloud-serial = Серијски број
cloud-valid-from = Важи од
cloud-valid-to = Важи до
cloud-renew-opens = Обнова је могућа од { $date }, у последњих { $days } дана важења.
cloud-issued = ✓ Успешно је издат сертификат за потпис у клауду
cloud-renewed = ✓ Сертификат у клауду је обновљен.
cloud-revoked = Сертификат у клауду је опозван, а његов кључ уништен. Апликација ConsentID остаје активна.
cloud-revoked-all = Сви ваши сертификати су опозвани. Апликација ConsentID више није активна; за поновну активацију обратите се службенику.
cloud-fresh-login = За ову радњу потребна је пријава мобилном апликацијом ConsentID у последњих 15 минута.
cloud-login-again = Пријавите се мобилном апликацијом
agreement-needs-consentid = Уговор садржи ваш ЈМБГ, па се отвара само после пријаве мобилном апликацијом ConsentID. Пријава лозинком није довољна.
cloud-refused-active = Већ имате активан сертификат у клауду.
cloud-refused-none = Немате активан сертификат у клауду.
cloud-refused-expired = Сертификат је истекао; издајте нови.
agreement-accept = Прихвати
agreement-cancel = Одустани
revoke-confirm-heading = Опозив сертификата у клауду
revoke-confirm-text = Опозвани сертификат се више не може користити за потписивање, а његов кључ се трајно уништава. Апликација ConsentID остаје активна.
revoke-all-confirm-heading = Опозив свих сертификата
revoke-all-confirm-text = Биће опозвани сертификат у клауду и сертификат апликације ConsentID. Апликација ConsentID више неће бити активна, захтеви на чекању биће поништени и бићете одјављени. За поновну активацију биће потребан службеник.
confirm-yes = Да, опозови
cloud-agreements = Закључени уговори
cloud-agreement-number = Уговор број

## A certificate operation approved in ConsentID (issue 22)
operation-title-issue = Издавање квалификованог електронског сертификата у клауду
operation-title-renew = Обнова квалификованог електронског сертификата у клауду
operation-title-revoke = Опозив квалификованог електронског сертификата у клауду
operation-title-revoke_all = Опозив свих сертификата и деактивација апликације ConsentID
operation-heading = Потврдите у апликацији ConsentID
operation-pending = Отворите апликацију ConsentID на телефону, проверите захтев, унесите ПИН и изаберите „Ауторизовати”. Ова страница се сама освежава.
operation-agreement = Уговор број { $number }, отисак { $fingerprint }
operation-time-left = Преостало време: { $seconds } s
operation-failed-denied = Захтев је одбијен у апликацији ConsentID. Ништа није промењено.
operation-failed-expired = Захтев је истекао пре одобрења. Ништа није промењено.
operation-failed-failed = Захтев није одобрен. Ништа није промењено.
operation-failed-refused = Радња више није могућа. Ништа није промењено.

## Signing documents (Потписивање документа)
service-sign = Потписивање документа
sign-heading = Потписивање документа
sign-intro = Изаберите PDF документе које желите да потпишете квалификованим електронским потписом. Потпис одобравате у апликацији ConsentID: проверите називе докумената и њихове отиске, унесите ПИН и изаберите Ауторизовати.
sign-documents = PDF документи
sign-limits = Највише { $files } докумената, до { $max } MB по документу и { $total } MB укупно.
sign-level = Ниво потписа
sign-level-b-b = PAdES-B-B (основни потпис)
sign-level-b-t = PAdES-B-T (са временским жигом)
sign-level-b-lt = PAdES-B-LT (са временским жигом и подацима за дугорочну проверу)
sign-submit = Потпиши
sign-pending = Одобрите потпис у апликацији ConsentID. Страница ће се сама освежити.
sign-time-left = Преостало време: { $seconds } s
sign-done = ✓ Документи су потписани. Преузмите потписане документе.
sign-document = Документ
sign-fingerprint = Отисак (SHA-256)
sign-download = Преузми потписани документ
sign-again = Потпиши друге документе
sign-error-none = Изаберите бар један PDF документ.
sign-error-too-many = Највише { $max } докумената може да се потпише одједном.
sign-error-too-large = Документ „{ $file }” је већи од { $max } MB.
sign-error-upload-too-large = Послати документи су превелики: највише { $max } MB по документу и { $total } MB укупно.
sign-error-not-pdf = Датотека „{ $file }” није PDF документ.
sign-error-corrupt = Документ „{ $file }” је оштећен или се не може потписати (на пример, шифрован је).
sign-error-form = Образац није исправно послат; покушајте поново.
sign-error-rate-limited = Превише захтева за потпис у кратком времену; покушајте поново за неколико минута.
sign-error-consentid = За потписивање је потребна пријава мобилном апликацијом ConsentID.
sign-documents-need-consentid = Потписани документи се отварају само после пријаве мобилном апликацијом ConsentID. Пријава лозинком није довољна.
sign-error-no-certificate = Немате активан квалификовани електронски сертификат у клауду. Издајте га у услузи Квалификовани електронски сертификат у клауду.
sign-error-no-device = Апликација ConsentID није активна; обратите се службенику за поновну активацију.
sign-failed-denied = Потпис је одбијен у апликацији ConsentID. Документи нису потписани.
sign-failed-expired = Захтев за потпис је истекао пре одобрења. Документи нису потписани.
sign-failed-locked = ПИН је закључан после 5 погрешних покушаја; документи нису потписани.
sign-failed-no-device = Апликација ConsentID више није активна; документи нису потписани.
sign-failed-revoked = Сертификат је опозван; документи нису потписани.
sign-failed-certificate-expired = Сертификат је истекао; документи нису потписани.
sign-failed-interrupted = Потписивање је прекинуто; покушајте поново.
sign-failed-failed = Потписивање није успело; покушајте поново.

## OAuth 2.0 for the CSC API
oauth-heading = Дозвола за приступ
oauth-text = Апликација „{ $client }” на вашем рачунару тражи приступ вашим сертификатима за потписивање на даљину.
oauth-client = Апликација
oauth-redirect = Адреса на коју се враћа
oauth-each-signature = Сваки потпис ћете и даље одобравати у апликацији ConsentID, ПИН-ом.
oauth-allow = Дозволи
oauth-deny = Одбиј
oauth-login-first = Да бисте апликацији „{ $client }” дозволили приступ, пријавите се мобилном апликацијом ConsentID; после пријаве враћате се овде.
oauth-invalid = Захтев за приступ није исправан.

# Registration e-mails (sent in Serbian and English together).
mail-register-verify-subject = Потврдите адресу електронске поште
mail-register-verify-text = Поштовани/а { $name }, да бисте потврдили адресу и завршили регистрацију, отворите { $link } (важи { $hours } сати).
mail-register-existing-subject = Регистрација на Порталу за електронску идентификацију
mail-register-existing-text = Неко је покушао да региструје нови налог са овом адресом, а налог већ постоји. Ако сте то били ви, пријавите се на { $login }. Ако нисте, не морате ништа да радите: ништа није промењено.

# The agreement's lengths of time (its articles 4 and 5), each in the form its number takes.
agreement-validity-years = { $count ->
    [one] { $count } годину
    [few] { $count } године
   *[other] { $count } година
}
agreement-validity-days = { $count ->
    [one] { $count } дан
   *[other] { $count } дана
}
# After "у" (in the …) of the renewal window.
agreement-renewal-window = { $count ->
    [one] последњем { $count } дану
    [few] последња { $count } дана
   *[other] последњих { $count } дана
}

# The cloud certificate's e-mails (each followed by its English text).
mail-cloud-issued-subject = Уговор и квалификовани електронски сертификат у клауду
mail-cloud-issued-text = Поштовани/а { $name }, издат вам је квалификовани електронски сертификат у клауду (серијски број { $serial }), важи до { $until }. У прилогу је закључени уговор број { $number }.
mail-cloud-renewed-subject = Сертификат у клауду је обновљен
mail-cloud-renewed-text = Ваш сертификат у клауду је обновљен: нови серијски број { $serial }, важи до { $until }. Претходни ({ $old }) је опозван.
mail-cloud-revoked-subject = Сертификат у клауду је опозван
mail-cloud-revoked-text = Ваш сертификат у клауду (серијски број { $serial }) је опозван, а његов кључ уништен. Апликација ConsentID остаје активна.
mail-cloud-revoked-all-subject = Сви сертификати су опозвани
mail-cloud-revoked-all-text = Сви ваши сертификати су опозвани, укључујући сертификат апликације ConsentID, која више није активна. За поновну активацију обратите се службенику.

# The service agreement (the seed's step 9), as the authority fills it in and the PDF shows it: the
# first line is the title, every other line a paragraph. $representative is
# agreement-representative when the settings name one, else nothing.
agreement-text =
    УГОВОР О ПРУЖАЊУ УСЛУГЕ ИЗДАВАЊА КВАЛИФИКОВАНОГ ЕЛЕКТРОНСКОГ СЕРТИФИКАТА ЗА КВАЛИФИКОВАНИ ЕЛЕКТРОНСКИ ПОТПИС НА ДАЉИНУ

    На основу члана 30. став 1. Закона о електронском документу, електронској идентификацији и услугама од поверења у електронском пословању („Службени гласник РС”, бр. 94/17 и 52/21) и члана 3. Уредбе о условима за пружање квалификованих услуга од поверења („Службени гласник РС”, број 37/18), дана { $date } године, под бројем { $number }, закључује се уговор између:

    1. { $provider }, { $address }, ПИБ { $tax_id }, матични број { $registration }{ $representative } (у даљем тексту: Канцеларија), и
    2. Корисника: { $user_name }, ЈМБГ { $jmbg } (у даљем тексту: Корисник).

    Члан 1. Предмет уговора
    Канцеларија је уписана у Регистар пружалаца квалификованих услуга од поверења за услугу управљања квалификованим средством за израду електронског потписа на даљину. Предмет овог уговора је издавање квалификованог електронског сертификата Кориснику и управљање његовим кључем за потписивање у квалификованом средству Канцеларије, тако да Корисник може да прави квалификоване електронске потписе на даљину.

    Члан 2. Обавезе Канцеларије
    Канцеларија генерише пар кључева у квалификованом средству, чува приватни кључ тако да никада не напушта средство, употребљава га искључиво по одобрењу Корисника датом апликацијом ConsentID, објављује статус сертификата (листа опозваних сертификата и OCSP) и поступа у складу са Политиком сертификације и Практичним правилима.

    Члан 3. Обавезе Корисника и искључива контрола
    Корисник је дужан да чува ПИН апликације ConsentID у тајности, да не уступа уређај трећим лицима, да сваки захтев за потписивање пажљиво прегледа пре одобрења и да без одлагања опозове сертификат ако посумња у злоупотребу. Само Корисник одобрава сваку употребу свог кључа.

    Члан 4. Рок важења
    Сертификат важи { $validity } од дана издавања.

    Члан 5. Обнова
    Корисник може да обнови сертификат у { $renewal } његовог важења; при обнови се генерише нови пар кључева, а претходни сертификат се опозива.

    Члан 6. Опозив
    Корисник може у сваком тренутку да опозове сертификат на Порталу. Опозивом свих сертификата опозива се и сертификат апликације ConsentID, која тада престаје да буде активна. Канцеларија опозива сертификат у случајевима прописаним законом.

    Члан 7. Заштита података о личности
    Канцеларија обрађује податке о личности Корисника (име, презиме, ЈМБГ, адреса електронске поште) искључиво ради пружања услуге, у складу са Законом о заштити података о личности, и чува их у роковима прописаним за пружаоце квалификованих услуга од поверења.

    Члан 8. Приговори
    Приговоре на рад Канцеларије Корисник подноси електронском поштом или писаним путем на адресу Канцеларије; Канцеларија одговара у року од 15 дана.

    Члан 9. Завршне одредбе
    Уговор је закључен прихватањем на Порталу за електронску идентификацију и производи дејство даном издавања сертификата. Примерак уговора доставља се Кориснику електронском поштом.
agreement-representative = , коју заступа { $name }
agreement-footer = Портал за електронску идентификацију

# The OpenID provider's consent page (issue 23)
oidc-heading = Пријава на услугу
oidc-text = Услуга „{ $client }” тражи да се пријавите својим налогом и да добије ове податке:
oidc-claim-sub = ознаку вашег налога, посебну за ову услугу
oidc-claim-given-name = име
oidc-claim-family-name = презиме
oidc-claim-email = адресу е-поште
oidc-claim-email-verified = да ли је адреса е-поште потврђена
oidc-claim-jmbg = ЈМБГ
oidc-remembered = Сагласност се памти; можете је повући на страници налога.
oidc-allow = Дозволи
oidc-deny = Одбиј
oidc-login-first = Да бисте се пријавили на услугу „{ $client }”, прво се пријавите на портал: мобилном апликацијом ConsentID, њеним QR кодом или лозинком; после пријаве враћате се овде.
oidc-invalid = Захтев за пријаву није исправан.
account-consents = Услуге на које се пријављујете овим налогом
account-no-consents = Ниједна услуга још нема вашу сагласност за пријаву.
account-withdraw-consent = Повуци сагласност
oidc-logout-heading = Одјава
oidc-logout-text = Услуга „{ $client }” тражи да се одјавите са портала. Одјавом се одјављујете и са свих услуга на које сте се пријавили овом сесијом.
oidc-logout-text-portal = Одјавом се одјављујете са портала и са свих услуга на које сте се пријавили овом сесијом.
oidc-logout-stay = Остани пријављен
