#include "runtime/data/story_generator.h"

#include <algorithm>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "runtime/data/random.h"
#include "runtime/data/token_shard.h"

namespace mla {

// Frame syntax: {var} inserts a story variable; {Var} the same, capitalised;
// {a_var} the variable with "a"/"an" in front; {x|y|z} one alternative
// (alternatives may themselves hold {...}).
using Frames = std::vector<const char*>;

struct Slot {
  Frames frames;
  int base = 0;  // id of frames[0] among all frames
};

struct Problem {
  bool needs_light = false;      // the object must be able to blow into a tree
  bool needs_breakable = false;  // the object must be able to break
  Slot start, react, feel, attempt, solve, after;
  Frames lessons;
};

struct Person {
  const char* kind;
  bool girl;
};

struct Thing {
  const char* name;
  bool light;
  bool breakable;
};

struct StoryGrammar {
  Slot opening, setting, object, friend_intro, outing, extra, ending, lesson;
  std::vector<Problem> problems;
  int frame_count = 0;
};

namespace {

const char* const kGirlNames[] = {
    "Lily", "Mia", "Sara", "Anna", "Lucy", "Emma", "Zoe", "Ella", "Amy", "Rosie",
    "Daisy", "Sophie", "Molly", "Jenny", "Nina", "Ruby", "Grace", "Ivy", "Hannah", "Maya",
    "Bella", "Clara", "Lola", "Kate", "Julia", "Poppy", "Wendy", "Sue", "Mila", "Nora",
    "Alice", "Betty", "Cindy", "Dora", "Eva", "Fiona", "Gina", "Holly", "Iris", "Jane",
    "Kim", "Laura", "Megan", "Nelly", "Olive", "Penny", "Rita", "Sally", "Tara", "Una",
    "Vera", "Willa", "Abby", "Bonnie", "Coco", "Dotty", "Elsie", "Fern", "Hazel", "Jill",
    "Katie", "Lena", "Millie", "Nell", "Pam", "Rose", "Stella", "Tess", "Violet", "Winnie",
    "Ada", "Bea", "Cara", "Dina", "Edie", "Flora", "Gemma", "Heidi", "Isla", "Joy",
    "Kiki", "Lottie", "Mabel", "Noor", "Opal", "Pearl", "Queenie", "Rhea", "Sadie", "Trudy"};
const char* const kBoyNames[] = {
    "Tom", "Ben", "Max", "Sam", "Leo", "Jack", "Tim", "Jake", "Finn", "Bob",
    "Timmy", "Billy", "Joe", "Danny", "Luke", "Noah", "Eli", "Ollie", "Ted", "Pip",
    "Kevin", "Jim", "Roy", "Ned", "Hugo", "Toby", "Rex", "Milo", "Oscar", "Zack",
    "Adam", "Bill", "Carl", "Dan", "Eddie", "Fred", "Gus", "Harry", "Ian", "Jon",
    "Ken", "Larry", "Mark", "Nick", "Otto", "Pete", "Ralph", "Steve", "Tony", "Vic",
    "Will", "Arlo", "Benny", "Charlie", "Dexter", "Felix", "George", "Henry", "Jasper",
    "Louie", "Marty", "Nate", "Percy", "Rudy", "Sid", "Teddy", "Walter", "Bruno", "Ziggy",
    "Buddy", "Abe", "Barney", "Cody", "Duke", "Ernie", "Frankie", "Gordon", "Hank", "Iggy",
    "Jerry", "Kit", "Lenny", "Monty", "Norman", "Ozzy", "Quinn", "Ricky", "Simon", "Tucker",
    "Wally"};
const char* const kAnimals[] = {
    "dog", "cat", "bunny", "bear", "bird", "duck", "frog", "fox", "mouse", "lion",
    "puppy", "kitten", "pig", "owl", "squirrel", "turtle", "elephant", "horse", "monkey",
    "hedgehog", "goat", "lamb", "cow", "chicken", "penguin", "giraffe", "zebra", "tiger",
    "deer", "raccoon", "beaver", "otter", "koala", "panda", "kangaroo", "hamster",
    "dragon", "dinosaur", "robot", "snail", "ladybug", "bee", "butterfly", "crab",
    "seal", "whale", "wolf", "camel", "donkey", "rabbit", "parrot", "swan"};
const char* const kTraits[] = {
    "little", "happy", "kind", "curious", "brave", "shy", "silly", "friendly", "playful",
    "small", "sweet", "cheerful", "gentle", "funny", "smart", "busy", "sleepy", "clever",
    "bouncy", "quiet", "loud", "polite", "helpful", "lively", "jolly", "fluffy", "tiny",
    "proud", "lazy", "grumpy", "careful", "bold", "merry", "honest", "caring", "chatty",
    "dreamy", "eager", "fuzzy", "hungry", "lucky", "nice", "noisy", "wise", "young"};
const Thing kThings[] = {
    {"ball", false, false},      {"kite", true, true},         {"balloon", true, false},
    {"teddy bear", false, false}, {"doll", false, true},        {"toy car", false, true},
    {"toy boat", false, true},   {"toy train", false, true},   {"hat", true, false},
    {"scarf", true, false},      {"drum", false, true},        {"book", false, false},
    {"blanket", false, false},   {"paper plane", true, true},  {"bucket", false, true},
    {"robot", false, true},      {"toy truck", false, true},   {"necklace", false, true},
    {"crown", false, true},      {"whistle", false, false},    {"music box", false, true},
    {"jump rope", false, false}, {"paper bird", true, true},   {"yo-yo", false, true},
    {"puzzle", false, false},    {"toy horse", false, true},   {"rocket", false, true},
    {"flag", true, false},       {"ribbon", true, false},      {"feather", true, false},
    {"spinning top", false, true}, {"toy plane", false, true}, {"bell", false, true},
    {"wagon", false, true},      {"shovel", false, true},      {"sled", false, true},
    {"xylophone", false, true},  {"magic wand", false, true},  {"basket", false, true},
    {"lamp", false, true},       {"clock", false, true},       {"pillow", false, false},
    {"rag doll", false, false},  {"marble", false, false},     {"sticker book", false, false},
    {"toy piano", false, true},  {"backpack", false, false},   {"bubble wand", false, true},
    {"glider", true, true},      {"sun hat", true, false},     {"leaf crown", true, true},
    {"pinwheel", true, true},    {"mitten", true, false},      {"sock puppet", false, false},
    {"cup", false, true},        {"block tower", false, true}};
const char* const kThingAdjectives[] = {
    "red", "blue", "green", "yellow", "pink", "purple", "orange", "shiny", "little",
    "big", "new", "sparkly", "bright", "striped", "spotted", "golden", "silver", "white",
    "black", "brown", "gray", "tiny", "huge", "pretty", "fancy", "special", "old", "funny",
    "round", "soft", "colorful", "lovely"};
const char* const kColors[] = {"red", "blue", "green", "yellow", "pink", "purple", "orange",
                               "white", "brown", "gold", "silver", "black", "gray"};
const char* const kLands[] = {"small town", "big forest", "quiet village", "sunny valley",
                              "green meadow", "little farm", "land by the sea",
                              "snowy land", "busy city", "windy hill", "magic kingdom",
                              "faraway land", "deep jungle", "sandy desert"};
const char* const kHomes[] = {
    "in a small house near the woods", "in a little yellow house", "on a big farm",
    "in a cozy house by the sea", "near a quiet lake", "in a busy town",
    "in a tree house", "at the edge of a forest", "in a house with a red door",
    "next to a big garden", "in a little blue cottage", "under a big oak tree",
    "in a warm den", "in a nest high in a tree", "in a tall castle", "in a barn full of hay",
    "on a quiet street", "by a little pond", "in a hole under the hill",
    "in an old boat on the beach"};
const char* const kPlaces[] = {"park", "beach", "forest", "garden", "playground",
                               "lake", "farm", "meadow", "hill", "river", "pond",
                               "market", "library", "zoo", "orchard", "woods", "field",
                               "school", "fair", "museum", "bakery", "toy shop"};
const char* const kActivities[] = {
    "play tag", "jump in the leaves", "pick flowers", "play hide and seek",
    "run in the grass", "watch the ducks", "build a fort", "sing songs",
    "draw with chalk", "fly paper planes", "look at the clouds", "blow bubbles",
    "splash in puddles", "dance in the sun", "collect pretty rocks", "play ball",
    "read stories", "paint pictures", "count the birds", "look for bugs", "play pretend",
    "climb trees", "make mud pies", "chase butterflies", "hop like frogs", "play music",
    "look for shells", "bake cookies", "feed the birds", "play with blocks",
    "plant seeds", "make a sandcastle", "have a picnic", "march like soldiers"};
const char* const kFoods[] = {"cookies", "apples", "berries", "carrots", "grapes",
                              "muffins", "cupcakes", "strawberries", "crackers", "pancakes",
                              "bananas", "cherries", "peaches", "pears", "plums", "donuts",
                              "sandwiches", "noodles", "pretzels", "raisins", "waffles",
                              "blueberries", "oranges", "nuts", "biscuits", "candies"};
const Person kHelpers[] = {{"mom", true},          {"dad", false},         {"grandma", true},
                           {"grandpa", false},     {"big sister", true},   {"big brother", false},
                           {"aunt", true},         {"uncle", false},
                           {"nanny", true},        {"teacher", true}};
const char* const kCritters[] = {"bird", "kitten", "puppy", "duck", "frog", "bunny",
                                 "turtle", "squirrel", "mouse", "hedgehog", "chick",
                                 "lamb", "owl", "bat", "fawn", "duckling", "piglet",
                                 "beetle", "snail", "ladybug"};
const char* const kTimes[] = {"morning", "afternoon", "sunny day", "bright morning",
                              "warm afternoon", "summer day", "spring morning", "fall day",
                              "winter morning", "rainy morning", "cloudy day", "Saturday",
                              "Sunday", "Monday", "holiday", "cool evening"};
const char* const kWeathers[] = {"sunny", "warm", "bright", "lovely", "beautiful", "nice",
                                 "cool", "breezy", "clear", "perfect", "happy", "golden"};
const char* const kSkills[] = {"ride a bike", "swim", "jump rope", "climb the big slide",
                               "whistle", "skip", "catch a ball", "do a cartwheel",
                               "write letters", "count to twenty", "tie a bow", "dive",
                               "skate", "hop on one foot", "fly", "read", "spell words",
                               "play the drum", "stand on one leg", "juggle"};

template <typename T, size_t N>
const T& Pick(const T (&items)[N], SplitMix64& rng) {
  return items[rng.Below(N)];
}

std::unique_ptr<StoryGrammar> BuildGrammar() {
  auto g = std::make_unique<StoryGrammar>();
  g->opening.frames = {
      "Once upon a time, there was {a_trait} {kind} named {N}.",
      "Once upon a time, in a {land}, there lived {a_trait} {kind} named {N}.",
      "There once was {a_trait} {kind} called {N}.",
      "{N} was {a_trait} {kind} who lived {home}.",
      "One {time}, {a_trait} {kind} named {N} woke up {early|with a big smile|and looked out "
      "the window}.",
      "Once there was {a_trait} {kind}. {His} name was {N}.",
      "A long time ago, {a_trait} {kind} named {N} lived {home}.",
      "In a {land} far away, there was {a_kind} named {N}.",
      "Once upon a time, {a_kind} named {N} lived in a {land}.",
  };
  g->setting.frames = {
      "{He} lived {home} with {his} {helper}.",
      "{He} lived {home}.",
      "Every day, {N} liked to {activity}.",
      "{N} loved to {activity} {with {his} {helper}|all day long|in the sun|after lunch}.",
      "{N} always {smiled at everyone|said hello to the birds|helped {his} {helper}|asked lots "
      "of questions}.",
      "{N} liked the color {color} very much.",
      "{N} was {a_trait} {kind}, and everyone {liked|loved} {him}.",
      "Every {morning|evening}, {N} {ate {his} breakfast|read a book} with {his} {helper}.",
  };
  g->object.frames = {
      "{N} had {a_objp}. {He} loved it more than anything.",
      "{His} favorite thing in the world was {a_objp}.",
      "{His} {helper} gave {him} {a_objp} for {his} birthday.",
      "{N} had {a_objp} that {he} took everywhere.",
      "One day, {N} found {a_objp} {under the bed|in the garden|in a big box|by the door}. "
      "{He} was so {happy|excited}!",
      "{N} always played with {his} {objp}.",
      "{N} had {a_objp}, and {he} {took good care of it|kept it by {his} bed at night}.",
  };
  g->friend_intro.frames = {
      "{N} had a best friend named {F}. {F} was {a_ftrait} {fkind}.",
      "One day, {N} met {a_fkind} named {F}.",
      "{N} and {his} friend {F} liked to play together.",
      "{F} the {fkind} lived {next door|near the big tree|down the road}, and {fhe} was "
      "{N}'s best friend.",
      "\"Hi, I am {F},\" said {a_ftrait} {fkind}. \"Do you want to play?\"",
      "{N} had a friend, {a_ftrait} {fkind} named {F}.",
      "{F} was {a_fkind} who {lived next door|liked to laugh|was always kind}. {Fhe} and {N} "
      "were good friends.",
  };
  g->outing.frames = {
      "One {time}, {N} and {F} went to the {place}.",
      "It was a {weather} day, so {N} and {F} went to the {place} to {activity}.",
      "{N} took {his} {objp} to the {place} to play with {F}.",
      "One day, {N} and {F} {walked|ran|skipped} to the {place} together.",
      "\"Let's go to the {place}!\" said {F}. {N} {said yes|nodded|clapped {his} hands}, and "
      "off they went.",
      "After lunch, {N} and {F} went to the {place} to {activity}.",
  };
  g->extra.frames = {
      "A {gentle|cool|soft} breeze moved the {leaves|grass|flowers}, and a {bee|bug|bird} "
      "buzzed by.",
      "{F} found a {smooth|round|tiny} {pebble|shell|acorn} and gave it to {N}.",
      "They {shared|ate} some {food} and {drank|sipped} cold {lemonade|water|juice}.",
      "Far away, they could hear {church bells|a train|a cow mooing|a rooster}.",
      "There was a {rainbow|puddle|big mud hole|tall fence} {near the path|by the gate} and "
      "they {laughed|giggled} about it.",
      "The {place} was {big|pretty|full of flowers|quiet and green}.",
      "There were {tall trees|many flowers|little birds|soft green grass} all around.",
      "{N} felt the {warm sun|soft wind|cool grass} on {his} {face|nose|feet}.",
      "{F} {laughed|giggled|jumped up and down}. \"This is so much fun!\" {fhe} said.",
      "They {played|ran|sang} until they were {tired|hungry|out of breath}.",
      "{N} saw {a butterfly|a big dog|a little bird|a red flower} and pointed at it.",
      "The sun was {shining|warm|bright}, and the birds were singing.",
      "At the {place}, they {ran and jumped|laughed and played|looked at the flowers|played "
      "tag} {for a long time|all morning|together}.",
      "\"I like this place,\" said {N}. \"Me too,\" said {F}.",
      "{N} and {F} counted the {clouds|birds|flowers}. There were so many!",
  };
  g->ending.frames = {
      "When the stars came out, {N} {whispered|said} good night to {his} {objp}.",
      "{N} told {his} {helper} all about {his} {wonderful|exciting|busy} day.",
      "From that day on, {N} and {F} were the best of friends.",
      "That night, {N} went to bed with a big smile on {his} face.",
      "{N} and {F} played together until the sun went down.",
      "{N} felt {happy|proud|warm inside}. It had been a very good day.",
      "Then {N} and {F} went home, tired and happy.",
      "It was the best day ever, and {N} would never forget it.",
      "{N} hugged {his} {objp} and smiled.",
  };
  g->lesson.frames = {
      "{N} learned that {lesson}.",
      "That day, {N} learned an important lesson: {lesson}.",
      "{N} and {F} learned that {lesson}.",
      "And so, {N} knew that {lesson}.",
  };

  Problem lost;
  lost.start.frames = {
      "But when it was time to go home, {N} could not find {his} {objp}.",
      "Then {N} looked down. {His} {objp} was gone!",
      "After a while, {N} saw that {his} {objp} was not there anymore.",
  };
  lost.react.frames = {
      "\"Oh no!\" cried {N}. \"Where is my {obj}?\"",
      "\"My {obj} is lost!\" said {N}. \"I cannot find it anywhere.\"",
      "\"{F}, have you seen my {obj}?\" asked {N}.",
  };
  lost.feel.frames = {
      "{N} felt very sad. {His} eyes filled with tears.",
      "{N} was {so worried|very sad|scared}. {He} loved that {obj} so much.",
  };
  lost.attempt.frames = {
      "They looked {under the bench|behind a tree|in the tall grass}, but the {obj} was not "
      "there.",
  };
  lost.solve.frames = {
      "Then {F} had an idea. \"Let's look by the {pond|slide|big rock}!\" {fhe} said. And "
      "there it was!",
      "{F} looked very carefully and found the {obj} {under a pile of leaves|next to the big "
      "rock|behind a bush}.",
      "They walked back the way they came, and soon {N} saw something {adj}. It was {his} "
      "{obj}!",
  };
  lost.after.frames = {
      "\"Thank you, {F}!\" said {N}. {He} gave {F} a big hug.",
      "{N} held {his} {obj} tight. \"I will be more careful,\" {he} said.",
  };
  lost.lessons = {"it is good to take care of your things",
                  "friends help each other when things go wrong",
                  "if you do not give up, you can find what you lost"};
  g->problems.push_back(lost);

  Problem tree;
  tree.needs_light = true;
  tree.start.frames = {
      "{Suddenly|All of a sudden}, a big wind came and {blew|carried} {his} {objp} up into a "
      "tall tree.",
      "The wind pulled the {obj} out of {N}'s hands, and it got stuck in a tall tree.",
  };
  tree.react.frames = {
      "\"My {obj}!\" shouted {N}. \"It is stuck in the tree!\"",
      "\"How will we get it down?\" asked {F}.",
  };
  tree.feel.frames = {
      "{N} {tried to reach it|jumped as high as {he} could}, but the tree was too tall.",
      "{N} felt sad. The {obj} was so high up.",
  };
  tree.attempt.frames = {
      "{F} tried to climb the tree, but the branches were too high.",
  };
  tree.solve.frames = {
      "Then {N} had an idea. {He} ran home and asked {his} {helper} for help. {His} {helper} "
      "came with a long ladder and got the {obj} down.",
      "A tall giraffe walked by. \"I can help,\" said the giraffe, and it took the {obj} down "
      "with its long neck.",
      "{F} found a long stick. Together, they pushed the branch, and the {obj} fell down into "
      "{N}'s arms.",
      "A kind bird flew up to the branch and pulled the {obj} free.",
  };
  tree.after.frames = {
      "\"Thank you so much!\" said {N}, and {he} {smiled|laughed|jumped for joy}.",
      "{N} held the {obj} close. \"Now I will hold it tight,\" {he} said.",
  };
  tree.lessons = {"it is smart to ask for help when something is too hard",
                  "working together makes hard things easy"};
  g->problems.push_back(tree);

  Problem broken;
  broken.needs_breakable = true;
  broken.start.frames = {
      "{F} wanted to see the {obj}. {Fhe} pulled it too hard, and it broke.",
      "Then the {obj} fell on the hard ground and broke into two pieces.",
      "{F} played with the {obj} too roughly, and {crack|snap}! It broke.",
  };
  broken.react.frames = {
      "\"Look what you did!\" said {N}. \"My {obj} is broken!\"",
      "\"I am so sorry,\" said {F}. \"I did not mean to break it.\"",
  };
  broken.feel.frames = {
      "{N} felt angry and sad at the same time.",
      "{F} felt bad. {Fhe} looked at the ground and did not say anything.",
  };
  broken.attempt.frames = {
      "{N} tried to put the pieces together, but they fell apart again.",
  };
  broken.solve.frames = {
      "Then {N}'s {helper} came and looked at the {obj}. \"We can fix it with some glue,\" "
      "{hhe} said. Soon the {obj} was as good as new.",
      "{N} and {F} found some tape and fixed the {obj} together.",
      "{F} said sorry, and {N} said, \"It is okay. We can fix it.\" They worked together until "
      "the {obj} was fixed.",
  };
  broken.after.frames = {
      "{N} was not angry anymore. {He} and {F} played with the {obj} again, very gently.",
      "\"Thank you for helping me fix it,\" said {N}. {F} smiled.",
  };
  broken.lessons = {"saying sorry can make things better",
                    "it is important to be gentle with other people's things",
                    "friends forgive each other"};
  g->problems.push_back(broken);

  Problem hurt;
  hurt.start.frames = {
      "While they were running, {F} tripped on a rock and fell down.",
      "{F} slipped on the wet grass and hurt {fhis} knee.",
  };
  hurt.react.frames = {
      "\"Ouch! My knee hurts,\" cried {F}.",
      "\"Are you okay?\" asked {N}. {He} ran to {his} friend.",
  };
  hurt.feel.frames = {
      "{F} was sad, and a little tear rolled down {fhis} cheek.",
      "{N} did not like to see {his} friend sad.",
  };
  hurt.attempt.frames = {
      "{F} tried to stand up, but {fhis} knee hurt too much.",
  };
  hurt.solve.frames = {
      "{N} helped {F} stand up. {He} walked with {fhim} to {N}'s {helper}, who put a bandage "
      "on {fhis} knee.",
      "{N} gave {F} a big hug and sat with {fhim} until {fhe} felt better.",
      "{N} shared {his} {food} with {F}. Soon {F} was smiling again.",
  };
  hurt.after.frames = {
      "\"Thank you for helping me,\" said {F}. \"You are a good friend.\"",
      "Soon {F} could run and play again.",
  };
  hurt.lessons = {"being kind to a friend can make the hurt go away",
                  "good friends take care of each other"};
  g->problems.push_back(hurt);

  Problem storm;
  storm.start.frames = {
      "Suddenly, dark clouds came, and it started to rain very hard.",
      "Then the sky turned gray, and they heard a loud boom of thunder.",
  };
  storm.react.frames = {
      "\"I am scared!\" said {F}. \"What do we do?\"",
      "\"Let's find a dry place!\" said {N}.",
  };
  storm.feel.frames = {
      "{N} was scared too, but {he} wanted to be brave for {his} friend.",
      "The wind was loud, and {N} held {F}'s hand.",
  };
  storm.attempt.frames = {
      "They ran to a big tree, but the rain still got them wet.",
  };
  storm.solve.frames = {
      "They found a little cave and waited inside until the rain stopped.",
      "{N} opened {his} big umbrella, and they walked home together under it.",
      "{N}'s {helper} came with a big coat and took them home.",
  };
  storm.after.frames = {
      "Soon the sun came out again, and there was a big rainbow in the sky.",
      "At home, they had warm {soup|milk|cocoa} and laughed about the rain.",
  };
  storm.lessons = {"being brave is easier when you are with a friend",
                   "storms do not last forever"};
  g->problems.push_back(storm);

  Problem share;
  share.start.frames = {
      "{F} saw the {objp} and wanted to play with it too.",
      "{F} asked, \"Can I play with your {obj}?\"",
  };
  share.react.frames = {
      "\"No, it is mine!\" said {N}. {He} held the {obj} close.",
      "\"I want it all for me,\" said {N}.",
  };
  share.feel.frames = {
      "{F} felt sad and walked away. {N} watched {fhim} go.",
      "Then {N} did not feel happy. Playing alone was not much fun.",
  };
  share.attempt.frames = {
      "{N} played with the {obj} alone, but it felt boring.",
  };
  share.solve.frames = {
      "{N} thought about it. Then {he} ran after {F} and said, \"Let's play with my {obj} "
      "together!\"",
      "{N} remembered what {his} {helper} said about sharing. {He} gave the {obj} to {F} and "
      "said, \"You can have a turn.\"",
  };
  share.after.frames = {
      "{F} smiled a big smile. They took turns and had lots of fun.",
      "Playing together was much more fun than playing alone.",
  };
  share.lessons = {"sharing makes everyone happy", "it is more fun to play together"};
  g->problems.push_back(share);

  Problem food;
  food.start.frames = {
      "When they got home, {N} was very hungry. {He} wanted some {food}, but the jar was on a "
      "high shelf.",
      "{N} saw a plate of {food} on the table, but {his} {helper} said they were for later.",
  };
  food.react.frames = {
      "\"I cannot reach it,\" said {N}.",
      "\"I am so hungry!\" said {N}. \"Can I have some {food} now?\"",
  };
  food.feel.frames = {
      "{N} felt grumpy. {He} wanted the {food} right now.",
      "{N}'s tummy made a loud sound, and {F} giggled.",
  };
  food.attempt.frames = {
      "{N} stood on a little chair, but the {food} were still too high.",
  };
  food.solve.frames = {
      "{F} said, \"Let's ask for help.\" So {N} asked {his} {helper}, and {hhe} gave them each "
      "some {food}.",
      "{N} waited {patiently|for a little while}, and after dinner, {his} {helper} gave {him} "
      "the {food}.",
  };
  food.after.frames = {
      "The {food} were {yummy|sweet|so good}. \"Thank you!\" said {N}.",
      "{N} shared the {food} with {F}, and they ate them all up.",
  };
  food.lessons = {"good things come to those who wait",
                  "it is better to ask for help than to climb on things"};
  g->problems.push_back(food);

  Problem lostway;
  lostway.start.frames = {
      "{N} and {F} walked {deep into the woods|far from home|past the big hill}. Soon they "
      "did not know where they were.",
      "They followed a pretty butterfly for a long time. When they stopped, they were lost.",
  };
  lostway.react.frames = {
      "\"Where are we?\" asked {F}. \"I want to go home.\"",
      "\"I think we are lost,\" said {N} in a small voice.",
  };
  lostway.feel.frames = {
      "{N} was scared. Everything looked big and strange.",
      "It was getting dark, and {F} began to cry.",
  };
  lostway.attempt.frames = {
      "They walked one way, and then the other way, but they could not find the path.",
  };
  lostway.solve.frames = {
      "Then {N} saw the roof of {his} house over the trees. They walked toward it and were "
      "home again.",
      "A friendly owl looked down from a tree. \"Follow me,\" said the owl, and it showed them "
      "the way home.",
      "{N} remembered the big rock near {his} house. They found the rock, and then they found "
      "the path home.",
  };
  lostway.after.frames = {
      "{N}'s {helper} gave them a big hug. \"I was worried about you,\" {hhe} said.",
      "When they got home, they were so happy to be safe.",
  };
  lostway.lessons = {"it is important to stay close to home",
                     "you should always tell a grown-up where you are going"};
  g->problems.push_back(lostway);

  Problem critter;
  critter.start.frames = {
      "Then they heard a small sound. A little {critter} was stuck in a bush and could not get "
      "out.",
      "Near the {pond|fence|road}, they found a little {critter}. It was cold and all alone.",
  };
  critter.react.frames = {
      "\"Poor little {critter}!\" said {N}. \"We have to help it.\"",
      "\"Can we help it?\" asked {F}.",
  };
  critter.feel.frames = {
      "The little {critter} looked scared and {sad|tired|hungry}.",
      "{N} felt sorry for the little {critter}.",
  };
  critter.attempt.frames = {
      "{N} reached for the {critter}, but it was too scared and moved away.",
  };
  critter.solve.frames = {
      "{N} moved the branches very slowly, and the {critter} came out.",
      "They gave the {critter} some water and a warm blanket, and soon it felt better.",
      "{N} and {F} looked for the {critter}'s mom. They found her by a tree, and the little "
      "{critter} ran to her.",
  };
  critter.after.frames = {
      "The {critter} looked at them as if to say thank you. {N} and {F} felt warm inside.",
      "\"We did it!\" said {F}. {N} smiled.",
  };
  critter.lessons = {"helping others is the right thing to do",
                     "even small friends need help sometimes"};
  g->problems.push_back(critter);

  Problem skill;
  skill.start.frames = {
      "{F} could {skill}, but {N} could not.",
      "{N} wanted to {skill} like the big kids, but it was very hard.",
  };
  skill.react.frames = {
      "\"I will never be able to do it,\" said {N}.",
      "\"Can you show me how?\" asked {N}.",
  };
  skill.feel.frames = {
      "{N} tried and tried, but it did not work. {He} felt like giving up.",
      "{N} felt sad and sat down on the grass.",
  };
  skill.attempt.frames = {
      "{N} tried one more time, but it was still too hard.",
  };
  skill.solve.frames = {
      "{F} said, \"Do not give up! Try one more time.\" {N} tried again, and this time {he} "
      "did it!",
      "Every day, {N} practiced a little bit. After a week, {he} could {skill} all by "
      "{himself}.",
  };
  skill.after.frames = {
      "\"I did it!\" shouted {N}. {F} clapped and cheered.",
      "{N} was so proud of {himself}.",
  };
  skill.lessons = {"if you keep trying, you can do hard things",
                   "practice helps you get better"};
  g->problems.push_back(skill);

  Problem messy;
  messy.start.frames = {
      "When they got home, {N}'s room was very messy. There were toys everywhere.",
      "{N}'s {helper} said, \"Please clean your room before you play.\"",
  };
  messy.react.frames = {
      "\"But cleaning is boring!\" said {N}.",
      "\"There are so many toys,\" said {N}. \"It will take all day!\"",
  };
  messy.feel.frames = {
      "{N} did not want to clean. {He} wanted to play with {his} {obj}.",
      "{N} felt grumpy and sat on the floor.",
  };
  messy.attempt.frames = {
      "{N} picked up one block, but then {he} stopped.",
  };
  messy.solve.frames = {
      "{F} had an idea. \"Let's make it a game!\" They raced to see who could put away the most "
      "toys.",
      "{N} and {F} sang a song while they put the toys away. Soon the room was clean.",
  };
  messy.after.frames = {
      "{N}'s {helper} smiled. \"What a clean room!\" {hhe} said.",
      "Now {N} could find {his} {obj} right away.",
  };
  messy.lessons = {"cleaning up can be fun when you do it together",
                   "a job is easier when friends help"};
  g->problems.push_back(messy);

  // Number every frame once, in a fixed order.
  int next = 0;
  auto number = [&next](Slot& s) {
    s.base = next;
    next += static_cast<int>(s.frames.size());
  };
  for (Slot* s : {&g->opening, &g->setting, &g->object, &g->friend_intro, &g->outing,
                  &g->extra, &g->ending, &g->lesson}) {
    number(*s);
  }
  for (Problem& p : g->problems) {
    for (Slot* s : {&p.start, &p.react, &p.feel, &p.attempt, &p.solve, &p.after}) number(*s);
  }
  g->frame_count = next;
  return g;
}

// Expands frames into one story's text.
class StoryWriter {
 public:
  StoryWriter(SplitMix64& rng, std::vector<int>* frames) : rng_(rng), frames_(frames) {}

  void Set(absl::string_view key, std::string value) { vars_[key] = std::move(value); }

  void Say(const Slot& slot, std::string* out) {
    size_t i = rng_.Below(slot.frames.size());
    if (frames_ != nullptr) frames_->push_back(slot.base + static_cast<int>(i));
    if (!out->empty()) out->push_back(' ');
    Expand(slot.frames[i], out);
  }

 private:
  std::string Lookup(absl::string_view key) const {
    auto it = vars_.find(key);
    if (it != vars_.end()) return it->second;
    if (!key.empty() && absl::ascii_isupper(static_cast<unsigned char>(key[0]))) {
      std::string lower(key);
      lower[0] = absl::ascii_tolower(static_cast<unsigned char>(lower[0]));
      auto lit = vars_.find(lower);
      CHECK(lit != vars_.end()) << "story frame uses unknown variable " << key;
      std::string v = lit->second;
      v[0] = absl::ascii_toupper(static_cast<unsigned char>(v[0]));
      return v;
    }
    LOG(FATAL) << "story frame uses unknown variable " << key;
  }

  void Expand(absl::string_view text, std::string* out) {
    size_t i = 0;
    while (i < text.size()) {
      if (text[i] != '{') {
        out->push_back(text[i++]);
        continue;
      }
      // Find the matching '}' and the top-level '|' separators.
      size_t depth = 0, j = i;
      std::vector<size_t> bars;
      for (; j < text.size(); ++j) {
        if (text[j] == '{') ++depth;
        if (text[j] == '}' && --depth == 0) break;
        if (text[j] == '|' && depth == 1) bars.push_back(j);
      }
      CHECK_LT(j, text.size()) << "unbalanced braces in story frame: " << text;
      absl::string_view inner = text.substr(i + 1, j - i - 1);
      if (!bars.empty()) {
        size_t pick = rng_.Below(bars.size() + 1);
        size_t from = pick == 0 ? i + 1 : bars[pick - 1] + 1;
        size_t to = pick == bars.size() ? j : bars[pick];
        Expand(text.substr(from, to - from), out);
      } else if (inner.size() > 2 && inner[0] == 'a' && inner[1] == '_') {
        std::string v = Lookup(inner.substr(2));
        char c = absl::ascii_tolower(static_cast<unsigned char>(v[0]));
        bool vowel = c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
        absl::StrAppend(out, vowel ? "an " : "a ", v);
      } else {
        absl::StrAppend(out, Lookup(inner));
      }
      i = j + 1;
    }
  }

  SplitMix64& rng_;
  std::vector<int>* frames_;
  absl::flat_hash_map<std::string, std::string> vars_;
};

size_t CountWordsIn(absl::string_view s) {
  size_t words = 0;
  bool in_word = false;
  for (char c : s) {
    bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

void SetCharacter(StoryWriter& w, absl::string_view prefix, const char* name, const char* kind,
                  bool girl, const char* trait) {
  auto key = [&](absl::string_view k) { return absl::StrCat(prefix, k); };
  w.Set(prefix.empty() ? "N" : "F", name);
  w.Set(key("kind"), kind);
  w.Set(key("trait"), trait);
  w.Set(key("he"), girl ? "she" : "he");
  w.Set(key("him"), girl ? "her" : "him");
  w.Set(key("his"), girl ? "her" : "his");
  w.Set(key("himself"), girl ? "herself" : "himself");
}

}  // namespace

StoryGenerator::StoryGenerator() : grammar_(BuildGrammar()) {}
StoryGenerator::~StoryGenerator() = default;
int StoryGenerator::frame_count() const { return grammar_->frame_count; }

std::string StoryGenerator::Generate(uint64_t stream_seed, std::vector<int>* frames) const {
  const StoryGrammar& g = *grammar_;
  SplitMix64 rng(stream_seed);
  if (frames != nullptr) frames->clear();
  StoryWriter w(rng, frames);

  // Characters: a child or a named animal, and a friend with another name.
  auto pick_character = [&rng](const char** name, const char** kind, bool* girl) {
    *girl = rng.Chance(1, 2);
    *name = *girl ? Pick(kGirlNames, rng) : Pick(kBoyNames, rng);
    *kind = rng.Chance(1, 2) ? (*girl ? "girl" : "boy") : Pick(kAnimals, rng);
  };
  const char *name, *kind, *fname, *fkind;
  bool girl, fgirl;
  pick_character(&name, &kind, &girl);
  do {
    pick_character(&fname, &fkind, &fgirl);
  } while (absl::string_view(fname) == name);
  SetCharacter(w, "", name, kind, girl, Pick(kTraits, rng));
  SetCharacter(w, "f", fname, fkind, fgirl, Pick(kTraits, rng));

  const Problem& problem = g.problems[rng.Below(g.problems.size())];
  const Thing* thing;
  do {
    thing = &Pick(kThings, rng);
  } while ((problem.needs_light && !thing->light) ||
           (problem.needs_breakable && !thing->breakable));
  const char* adj = Pick(kThingAdjectives, rng);
  w.Set("obj", thing->name);
  w.Set("adj", adj);
  w.Set("objp", absl::StrCat(adj, " ", thing->name));
  w.Set("color", Pick(kColors, rng));
  const Person& helper = Pick(kHelpers, rng);
  w.Set("helper", helper.kind);
  w.Set("hhe", helper.girl ? "she" : "he");
  w.Set("land", Pick(kLands, rng));
  w.Set("home", Pick(kHomes, rng));
  w.Set("place", Pick(kPlaces, rng));
  w.Set("activity", Pick(kActivities, rng));
  w.Set("food", Pick(kFoods, rng));
  w.Set("critter", Pick(kCritters, rng));
  w.Set("time", Pick(kTimes, rng));
  w.Set("weather", Pick(kWeathers, rng));
  w.Set("skill", Pick(kSkills, rng));
  w.Set("lesson", problem.lessons[rng.Below(problem.lessons.size())]);

  std::string intro, middle, close;
  w.Say(g.opening, &intro);
  if (rng.Chance(7, 10)) w.Say(g.setting, &intro);
  w.Say(g.object, &intro);
  w.Say(g.friend_intro, &intro);
  w.Say(g.outing, &intro);
  for (int n = static_cast<int>(rng.Below(3)); n > 0; --n) w.Say(g.extra, &intro);

  w.Say(problem.start, &middle);
  w.Say(problem.react, &middle);
  w.Say(problem.feel, &middle);
  if (rng.Chance(1, 2)) w.Say(problem.attempt, &middle);
  w.Say(problem.solve, &middle);
  w.Say(problem.after, &middle);

  w.Say(g.ending, &close);
  if (rng.Chance(1, 3)) w.Say(g.ending, &close);
  if (rng.Chance(3, 5)) w.Say(g.lesson, &close);

  // Short stories get more scene-setting so every story has about 100+ words.
  while (CountWordsIn(intro) + CountWordsIn(middle) + CountWordsIn(close) < 100) {
    w.Say(g.extra, &intro);
  }
  return absl::StrCat(intro, " ", middle, " ", close);
}

absl::StatusOr<std::vector<std::string>> GenerateStories(int64_t count, uint64_t seed,
                                                         StoryCorpusStats* stats) {
  if (count <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("story count must be > 0, got ", count));
  }
  StoryGenerator generator;
  std::vector<std::string> stories(static_cast<size_t>(count));
  // Story i comes from stream (seed, i); threads split the index range, so the
  // corpus is the same for any thread count.
  unsigned threads = std::max(1u, std::min(2u, std::thread::hardware_concurrency()));
  std::vector<absl::flat_hash_set<int>> used(threads);
  auto work = [&](unsigned t) {
    std::vector<int> frames;
    for (int64_t i = t; i < count; i += threads) {
      stories[i] = generator.Generate(MixSeed(seed, static_cast<uint64_t>(i)), &frames);
      used[t].insert(frames.begin(), frames.end());
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& th : pool) th.join();

  // A repeated story is redrawn from further streams of its index, in index
  // order, so the result does not depend on timing.
  absl::flat_hash_set<uint64_t> seen;
  seen.reserve(stories.size());
  for (int64_t i = 0; i < count; ++i) {
    std::vector<int> frames;
    for (uint64_t attempt = 1;; ++attempt) {
      const std::string& s = stories[i];
      if (seen.insert(Fnv1a64(s.data(), s.size())).second) break;
      stories[i] = generator.Generate(
          MixSeed(MixSeed(seed, static_cast<uint64_t>(i)), attempt), &frames);
      used[0].insert(frames.begin(), frames.end());
    }
  }
  if (stats != nullptr) {
    absl::flat_hash_set<int> all;
    for (const auto& u : used) all.insert(u.begin(), u.end());
    CountWords(stories, stats);
    stats->distinct_frames = static_cast<int64_t>(all.size());
    stats->available_frames = generator.frame_count();
  }
  return stories;
}

void CountWords(const std::vector<std::string>& stories, StoryCorpusStats* stats) {
  absl::flat_hash_set<std::string> vocab;
  stats->stories = static_cast<int64_t>(stories.size());
  stats->words = 0;
  stats->min_words = stories.empty() ? 0 : INT64_MAX;
  stats->max_words = 0;
  std::string word;
  for (const std::string& s : stories) {
    int64_t n = static_cast<int64_t>(CountWordsIn(s));
    stats->words += n;
    stats->min_words = std::min(stats->min_words, n);
    stats->max_words = std::max(stats->max_words, n);
    for (char c : s) {
      if (absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '\'' || c == '-') {
        word.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
      } else if (!word.empty()) {
        vocab.insert(word);
        word.clear();
      }
    }
    if (!word.empty()) {
      vocab.insert(word);
      word.clear();
    }
  }
  stats->distinct_words = static_cast<int64_t>(vocab.size());
}

}  // namespace mla
