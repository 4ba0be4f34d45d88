package refdata

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
)

// Officers are fictional but plausible: names composed from common
// Vietnamese family, middle and given names, drawn from a generator seeded
// by the unit's code, so the same unit always gets the same officers
// whatever else the set holds.

// Officer counts per unit.
const (
	OfficersPerWard       = 6
	OfficersPerDepartment = 15
)

var (
	// Family names with rough shares of the population (per thousand).
	familyNames = []struct {
		name   string
		weight int
	}{
		{"Nguyễn", 380}, {"Trần", 110}, {"Lê", 95}, {"Phạm", 70}, {"Huỳnh", 50},
		{"Hoàng", 20}, {"Phan", 45}, {"Võ", 39}, {"Vũ", 10}, {"Đặng", 21},
		{"Bùi", 20}, {"Đỗ", 14}, {"Hồ", 13}, {"Ngô", 13}, {"Dương", 10},
		{"Lý", 5}, {"Trương", 10}, {"Đinh", 6}, {"Lâm", 5}, {"Mai", 4},
	}
	middleNames = [2][]string{
		{"Văn", "Văn", "Văn", "Minh", "Quốc", "Hữu", "Đức", "Thanh", "Hoàng", "Công", "Ngọc", "Anh"},
		{"Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Mỹ", "Kim", "Phương", "Bảo", "Hồng", "Minh"},
	}
	givenNames = [2][]string{
		{"Anh", "Bình", "Cường", "Dũng", "Duy", "Hải", "Hiếu", "Hòa", "Hùng", "Huy", "Khang", "Khoa",
			"Kiên", "Long", "Lộc", "Minh", "Nam", "Nghĩa", "Nhân", "Phong", "Phúc", "Quang", "Sơn", "Tài",
			"Thắng", "Thành", "Thịnh", "Tiến", "Toàn", "Trí", "Trung", "Tuấn", "Việt", "Vinh", "Vũ"},
		{"Anh", "Châu", "Diễm", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa", "Hương", "Lan",
			"Liên", "Linh", "Loan", "Mai", "My", "Ngân", "Nhung", "Oanh", "Phương", "Quyên", "Tâm", "Thảo",
			"Thủy", "Trang", "Trâm", "Trinh", "Tuyết", "Uyên", "Vân", "Vy", "Xuân", "Yến"},
	}
	wardTitles = []string{
		"Chủ tịch UBND", "Phó Chủ tịch UBND", "Công chức Văn phòng - Thống kê",
		"Công chức Tư pháp - Hộ tịch", "Công chức Địa chính - Xây dựng", "Công chức Văn hóa - Xã hội",
	}
	departmentTitles = []string{
		"Giám đốc", "Phó Giám đốc", "Phó Giám đốc", "Chánh Văn phòng", "Trưởng phòng", "Trưởng phòng",
		"Phó Trưởng phòng", "Phó Trưởng phòng",
	}
)

// OfficerID is the id of the nth (from 1) officer of a unit: CB-<unit>-<nn>.
func OfficerID(unit string, n int) string { return fmt.Sprintf("CB-%s-%02d", unit, n) }

// GenerateOfficers makes OfficersPerWard officers for each 2025 ward,
// commune and special zone of units and OfficersPerDepartment for each
// department, deterministically.
func GenerateOfficers(units []Unit) []Officer {
	var out []Officer
	for _, u := range units {
		var n int
		var titles []string
		switch u.Kind {
		case KindWard, KindCommune, KindSpecialZone:
			n, titles = OfficersPerWard, wardTitles
		case KindDepartment:
			n, titles = OfficersPerDepartment, departmentTitles
		default:
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(u.Code))
		rng := rand.New(rand.NewPCG(h.Sum64(), 0x10c_2025))
		for i := 1; i <= n; i++ {
			title := "Chuyên viên"
			if i <= len(titles) {
				title = titles[i-1]
			}
			out = append(out, Officer{ID: OfficerID(u.Code, i), Unit: u.Code, Name: officerName(rng), Title: title})
		}
	}
	return out
}

func officerName(rng *rand.Rand) string {
	total := 0
	for _, f := range familyNames {
		total += f.weight
	}
	r := rng.IntN(total)
	family := familyNames[len(familyNames)-1].name
	for _, f := range familyNames {
		if r < f.weight {
			family = f.name
			break
		}
		r -= f.weight
	}
	g := rng.IntN(2)
	middle := middleNames[g][rng.IntN(len(middleNames[g]))]
	given := givenNames[g][rng.IntN(len(givenNames[g]))]
	for given == middle { // "Nguyễn Minh Minh" is no one's name
		given = givenNames[g][rng.IntN(len(givenNames[g]))]
	}
	return family + " " + middle + " " + given
}
