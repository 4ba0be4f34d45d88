// Package worktime computes legal deadlines and elapsed working time on a
// business calendar, and guarantees that its answers depend only on the
// calendar data and the configuration: the same instants, holidays and
// make-up days always give the same deadline, whatever the time zone of the
// arguments, and a Calendar is immutable and safe for concurrent use.
//
// The calendar is that of Ho Chi Minh City's administration: Monday to
// Friday are working days, minus the holidays and plus the make-up working
// days (weekend days worked after a government swap) given as data
// ([refdata.Day]). A working day has two sessions, 07:30–11:30 and
// 13:00–17:00 local time (8 working hours, the 40-hour week of Decision
// 188/1999/QĐ-TTg); both are configurable.
//
// Deadlines ([Calendar.AddWorkingDays]) follow the one-stop-shop rules:
//
//   - a dossier received on a working day at or before 15:00 counts that day
//     as its first working day; received after 15:00, or on a day off, it
//     counts from the next working day;
//   - a deadline of n whole working days ends at the end of the nth working
//     day (17:00), so a "same day" procedure (n = 1) received at 14:00 is due
//     at 17:00 the same day;
//   - a fraction of a day is that fraction of 8 working hours: 1.5 days end
//     4 working hours after the end of the first day (11:30 the next working
//     day); a deadline under one day (0.5 = half a day) runs as working hours
//     from reception, but never past the end of the first counted day.
//
// [Calendar.AddWorkingHours] and [Calendar.WorkingHoursBetween] measure plain
// working time: time outside the sessions, on weekends and on holidays does
// not count. They are inverse: WorkingHoursBetween(t, AddWorkingHours(t, h))
// is h (to within a nanosecond of rounding).
//
// Times are instants (time.Time); days are the local dates of the calendar's
// location. Asia/Ho_Chi_Minh has kept UTC+7 without daylight saving since
// 1975; when the system has no time zone database the calendar uses a fixed
// UTC+7 zone, which gives the same answers for every date since then.
package worktime
