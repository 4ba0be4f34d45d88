package sim

import (
	"math/rand/v2"
	"strconv"
)

// Fake but realistic-looking personal data. Ingest replaces it with keyed
// pseudonyms; it exists so that the pseudonymizer sees values of the real
// shapes (12-digit citizen ids, 10-digit mobile numbers, Vietnamese names).

var (
	familyNames = []string{"Nguyễn", "Nguyễn", "Nguyễn", "Trần", "Trần", "Lê", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Trương", "Đinh", "Lâm", "Mai", "Tô"}
	middleMale  = []string{"Văn", "Minh", "Hữu", "Đức", "Quốc", "Thanh", "Hoàng", "Công", "Gia", "Tuấn", "Anh"}
	middleFem   = []string{"Thị", "Thị", "Ngọc", "Thu", "Thanh", "Mỹ", "Bảo", "Kim", "Phương", "Hồng"}
	givenMale   = []string{"An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hiếu", "Hùng", "Huy", "Khánh", "Khoa", "Long", "Nam", "Nghĩa", "Phong", "Phúc", "Quân", "Sơn", "Tài", "Thắng", "Thịnh", "Trung", "Tuấn", "Việt", "Vinh"}
	givenFem    = []string{"Anh", "Châu", "Diệp", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hoa", "Hương", "Lan", "Linh", "Loan", "Mai", "My", "Nga", "Ngân", "Nhung", "Oanh", "Phượng", "Quyên", "Thảo", "Trang", "Vy", "Yến"}
	mobilePfx   = []string{"090", "093", "089", "070", "076", "077", "078", "079", "091", "094", "088", "081", "082", "083", "084", "085", "096", "097", "098", "086", "032", "033", "034", "035", "036", "037", "038", "039", "056", "058", "059"}
	birthProv   = []string{"079", "079", "079", "079", "074", "077", "075", "080", "082", "083", "086", "087", "089", "091", "094", "095", "052", "054", "042", "038", "001"}
	streets     = []string{"Nguyễn Huệ", "Lê Lợi", "Hai Bà Trưng", "Điện Biên Phủ", "Cách Mạng Tháng Tám", "Nguyễn Thị Minh Khai", "Võ Văn Tần", "Trần Hưng Đạo", "Lý Thường Kiệt", "Phan Xích Long", "Nguyễn Văn Linh", "Lê Văn Sỹ", "Hoàng Văn Thụ", "Phạm Văn Đồng", "Quang Trung", "Nguyễn Oanh", "Kha Vạn Cân", "Võ Văn Kiệt", "Trường Chinh", "Âu Cơ", "Lũy Bán Bích", "Huỳnh Tấn Phát", "Nguyễn Duy Trinh", "Tô Ký", "Kinh Dương Vương"}
	companyKind = []string{"Công ty TNHH", "Công ty TNHH", "Công ty Cổ phần", "Doanh nghiệp tư nhân", "Hộ kinh doanh"}
	companyWord = []string{"Thương mại", "Dịch vụ", "Xây dựng", "Sản xuất", "Vận tải", "Công nghệ", "Du lịch", "Thực phẩm", "Đầu tư", "Kỹ thuật"}
	companyName = []string{"Sài Gòn", "Phương Nam", "Bến Thành", "Minh Phát", "Hưng Thịnh", "An Khang", "Tân Phú", "Đại Việt", "Thành Công", "Hoàng Gia", "Nam Long", "Phú Mỹ"}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// person draws a citizen: a 12-digit citizen id (CCCD: birth province,
// century/sex digit, year of birth, six digits) and a full name.
func person(r *rand.Rand) (id, name string) {
	female := r.IntN(2) == 0
	year := 1950 + r.IntN(56)
	sex := 0
	if female {
		sex = 1
	}
	if year >= 2000 {
		sex += 2
	}
	b := make([]byte, 0, 12)
	b = append(b, pick(r, birthProv)...)
	b = append(b, byte('0'+sex))
	yy := year % 100
	b = append(b, byte('0'+yy/10), byte('0'+yy%10))
	for range 6 {
		b = append(b, byte('0'+r.IntN(10)))
	}
	if female {
		name = pick(r, familyNames) + " " + pick(r, middleFem) + " " + pick(r, givenFem)
	} else {
		name = pick(r, familyNames) + " " + pick(r, middleMale) + " " + pick(r, givenMale)
	}
	return string(b), name
}

// business draws an enterprise: a 10-digit HCMC tax code and a name.
func business(r *rand.Rand) (id, name string) {
	b := []byte("03")
	for range 8 {
		b = append(b, byte('0'+r.IntN(10)))
	}
	return string(b), pick(r, companyKind) + " " + pick(r, companyWord) + " " + pick(r, companyName)
}

// phone draws a Vietnamese mobile number (10 digits).
func phone(r *rand.Rand) string {
	b := []byte(pick(r, mobilePfx))
	for range 7 {
		b = append(b, byte('0'+r.IntN(10)))
	}
	return string(b)
}

// address draws a street address in a unit.
func address(r *rand.Rand, unitName string) string {
	return strconv.Itoa(1+r.IntN(450)) + " " + pick(r, streets) + ", " + unitName
}
