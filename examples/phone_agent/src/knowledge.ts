// Each account's knowledge base: what its phone agent may answer from. Two small
// businesses, so the example can show that one account never hears the other's facts.
export interface Account {
  name: string;
  documents: { file: string; title: string; text: string }[];
  calls: string[][]; // each call: the caller's turns (already transcribed)
}

export const ACCOUNTS: Account[] = [
  {
    name: "bright-smile-dental",
    documents: [
      {
        file: "hours.md",
        title: "Opening hours and location",
        text: `# Opening hours

Bright Smile Dental is open Monday to Friday from 8:00 to 18:00 and on Saturday from 9:00 to 13:00.
We are closed on Sundays and public holidays.

# Location

The clinic is at 14 Harbour Street, second floor. Free parking is available behind the building.`,
      },
      {
        file: "appointments.md",
        title: "Appointments, cancellations and emergencies",
        text: `# Cancellations

Appointments can be cancelled or moved free of charge up to 24 hours before the visit.
A late cancellation or a missed appointment costs 30 euros.

# Emergencies

For a dental emergency outside opening hours, such as severe tooth pain or a broken tooth,
call the emergency line on 555-0199. A dentist calls back within 30 minutes.`,
      },
      {
        file: "prices.md",
        title: "Prices",
        text: `# Prices

A check-up with cleaning costs 65 euros. Teeth whitening costs 250 euros per session.
A filling costs between 80 and 140 euros depending on its size. We accept cards and cash;
payment plans are available for treatments above 500 euros.`,
      },
    ],
    calls: [
      ["Hi, what time do you open on Saturday?", "And where exactly is the clinic?", "Is there parking?"],
      ["I need to cancel my appointment tomorrow, will I be charged?", "How much is a cleaning?"],
      ["I broke a tooth and it really hurts, what should I do?", "Can I pay in instalments for an implant?"],
    ],
  },
  {
    name: "quickfix-garage",
    documents: [
      {
        file: "services.md",
        title: "Services and prices",
        text: `# Services

QuickFix Garage services all car brands. An oil change with a new filter costs 89 euros and takes 45 minutes.
A full annual inspection costs 149 euros. Brake pads are replaced from 120 euros per axle.

# Booking

Book a slot by phone or on our website. Drop-off starts at 7:30 on weekdays.`,
      },
      {
        file: "warranty.md",
        title: "Warranty and courtesy cars",
        text: `# Warranty

Every repair carries a 12 month or 20,000 km warranty on parts and labour, whichever comes first.

# Courtesy cars

A free courtesy car is available for repairs that take longer than one day. Please book it in advance.`,
      },
    ],
    calls: [
      ["How much is an oil change?", "How long will it take?"],
      ["Do I get a replacement car while you fix my clutch?", "What warranty do you give on repairs?"],
    ],
  },
];
